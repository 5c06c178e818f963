//! Keeping an instance's provider credentials alive.

use crate::{ServiceError, Services};
use junction_core::Secret;
use junction_core::config::keys;
use junction_store::InstanceRecord;

impl Services {
    /// The access token to call the provider with now.
    pub async fn current_access_token(&self, instance: &InstanceRecord) -> Result<Secret, ServiceError> {
        instance
            .config
            .get(keys::USER_TOKEN)
            .cloned()
            .flatten()
            .map(Secret::new)
            .ok_or_else(|| {
                ServiceError::bad_request(
                    "reauthorization_required",
                    format!("instance {} has no access token; re-authorize it", instance.id),
                )
            })
    }

    /// The provider refused `rejected`: refresh unless another caller already did, and
    /// return the token to replay the request with.
    pub async fn refresh_after_rejection(
        &self,
        instance: &InstanceRecord,
        _rejected: &Secret,
    ) -> Result<Secret, ServiceError> {
        Err(ServiceError::bad_request(
            "reauthorization_required",
            format!("the provider refused instance {}'s credentials; re-authorize it", instance.id),
        ))
    }
}
