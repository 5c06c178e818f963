//! Where the element's and the resource's JavaScript hooks (spec §6.5) run: `preRequest`
//! once the vendor call is mapped and before it is sent, `postRequest` once the vendor
//! answered and before the answer is mapped. Element hooks run before the resource's.
//!
//! Junction has no script runtime yet, so a resource whose element or self declares a
//! hook is refused up front rather than answered without it: a hook usually reshapes
//! the call, and skipping it would return something the element's author never meant.

use crate::ServiceError;
use junction_core::ElementDefinition;
use junction_core::hub::{Hook, HookType, Resource};

/// The hooks of `kind` for a call of `resource`, element-level first.
pub(super) fn declared<'a>(
    element: &'a ElementDefinition,
    resource: &'a Resource,
    kind: HookType,
) -> impl Iterator<Item = &'a Hook> {
    element
        .hooks
        .iter()
        .chain(resource.hooks.iter())
        .filter(move |h| h.kind == kind)
}

/// Refuses a call whose hooks cannot run, before anything is sent.
pub(super) fn check_runnable(
    element: &ElementDefinition,
    resource: &Resource,
) -> Result<(), ServiceError> {
    for kind in [HookType::PreRequest, HookType::PostRequest] {
        if declared(element, resource, kind).next().is_some() {
            return Err(ServiceError::NotImplemented(format!(
                "element '{}' declares a {} hook for {} {}, and this Junction does not run hooks",
                element.key,
                match kind {
                    HookType::PreRequest => "preRequest",
                    _ => "postRequest",
                },
                resource.method.as_str(),
                resource.path
            )));
        }
    }
    Ok(())
}
