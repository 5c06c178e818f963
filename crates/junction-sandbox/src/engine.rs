//! One run of one hook, on the calling (blocking) thread.

use crate::{
    HookError, HookResult, Limits, MAX_LOG_LINE_BYTES, MAX_LOG_LINES, MAX_OUTPUT_BYTES,
    MAX_STACK_BYTES,
};
use rquickjs::context::{EvalOptions, intrinsic};
use rquickjs::function::{Opt, Rest};
use rquickjs::{Coerced, Context, Ctx, Exception, Function, Object, Runtime, Value};
use serde_json::Map;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const PRELUDE: &str = include_str!("prelude.js");
/// The file name QuickJS puts in stack traces, where the thrown line is read back from.
const SCRIPT_FILE: &str = "hook";
/// Longest script message kept in an error (the rest is cut).
const MAX_MESSAGE_CHARS: usize = 500;

/// What `done` was given: nothing yet, an object's JSON, or why it was refused.
#[derive(Default)]
enum Done {
    #[default]
    NotCalled,
    Output(Option<String>),
    Refused(String),
}

/// How a run ended as seen inside the context. A passed deadline outranks all of it: an
/// interrupted script may have ended in any of these ways.
enum Ending {
    Finished,
    /// Building the context or handing over the inputs failed.
    Setup {
        out_of_memory: bool,
    },
    Syntax(String),
    Thrown(String),
    OutOfMemory,
    /// `null` was thrown: what QuickJS throws when the heap is too full to build even the
    /// error. By the time it is seen the heap has been freed, so a script's own `throw null`
    /// cannot be told apart and is taken as running out of memory too.
    ThrownNull,
}

pub(crate) fn execute(
    name: &str,
    script: &str,
    input: &Map<String, serde_json::Value>,
    limits: Limits,
) -> Result<HookResult, HookError> {
    let started = Instant::now();
    let deadline = started + limits.time;
    let named = || name.to_owned();
    let timeout = || HookError::Timeout {
        name: named(),
        limit: limits.time,
    };
    let internal = || HookError::Internal { name: named() };

    let input_json = serde_json::to_string(input).map_err(|_| internal())?;
    let runtime = Runtime::new().map_err(|_| internal())?;
    runtime.set_memory_limit(limits.memory_bytes);
    runtime.set_max_stack_size(MAX_STACK_BYTES);
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    // QuickJS calls this every few thousand instructions; `true` raises an exception no
    // `catch` can stop, so a loop wrapped in try/catch still ends.
    runtime.set_interrupt_handler(Some(Box::new(move || {
        if Instant::now() >= deadline {
            flag.store(true, Ordering::Relaxed);
            true
        } else {
            false
        }
    })));
    // The smallest set hooks need: the base objects (Object, Array, String, Number, Math,
    // Error, Reflect, ...) plus JSON, RegExp, Map/Set, Date and Promise (so async code and a
    // stray `import()` behave as specified). No module loader, typed arrays, Proxy, timers
    // or `performance`.
    let context = Context::builder()
        .with::<intrinsic::Eval>()
        .with::<intrinsic::Json>()
        .with::<intrinsic::RegExpCompiler>()
        .with::<intrinsic::RegExp>()
        .with::<intrinsic::MapSet>()
        .with::<intrinsic::Date>()
        .with::<intrinsic::Promise>()
        .build(&runtime)
        .map_err(|_| internal())?;

    let done = Rc::new(RefCell::new(Done::NotCalled));
    let logs = Rc::new(RefCell::new(Vec::new()));
    let ending = context.with(|ctx| {
        run_in(
            &ctx,
            script,
            &input_json,
            input,
            Rc::clone(&done),
            Rc::clone(&logs),
            deadline,
        )
    });
    let timed_out = interrupted.load(Ordering::Relaxed) || Instant::now() > deadline;
    let out_of_memory = || HookError::Memory {
        name: named(),
        limit: limits.memory_bytes,
    };
    let result = match ending {
        _ if timed_out => Err(timeout()),
        Ending::Setup {
            out_of_memory: true,
        }
        | Ending::OutOfMemory
        | Ending::ThrownNull => Err(out_of_memory()),
        Ending::Setup {
            out_of_memory: false,
        } => Err(internal()),
        Ending::Syntax(message) => Err(HookError::Syntax {
            name: named(),
            message,
        }),
        Ending::Thrown(message) => Err(HookError::Thrown {
            name: named(),
            message,
        }),
        Ending::Finished => Ok(()),
    };
    drop(context);
    drop(runtime);
    result?;

    let logs = logs.take();
    let mut output = match done.take() {
        Done::NotCalled => return Err(HookError::NoDone { name: named() }),
        Done::Refused(message) => {
            return Err(HookError::BadOutput {
                name: named(),
                message,
            });
        }
        Done::Output(None) => Map::new(),
        Done::Output(Some(json)) => match serde_json::from_str(&json) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => {
                return Err(HookError::BadOutput {
                    name: named(),
                    message: "done() needs an object".to_owned(),
                });
            }
            Err(e) => {
                return Err(HookError::BadOutput {
                    name: named(),
                    message: format!("its JSON could not be read back ({e})"),
                });
            }
        },
    };
    if Instant::now() > deadline {
        return Err(timeout());
    }
    let proceed = output.remove("continue") != Some(serde_json::Value::Bool(false));
    Ok(HookResult {
        output,
        proceed,
        logs,
    })
}

fn run_in(
    ctx: &Ctx<'_>,
    script: &str,
    input_json: &str,
    input: &Map<String, serde_json::Value>,
    done: Rc<RefCell<Done>>,
    logs: Rc<RefCell<Vec<String>>>,
    deadline: Instant,
) -> Ending {
    if let Err(e) = install(ctx, input_json, input, done, logs) {
        let out_of_memory = match e {
            rquickjs::Error::Allocation => true,
            rquickjs::Error::Exception => matches!(caught(ctx), Caught::OutOfMemory),
            _ => false,
        };
        return Ending::Setup { out_of_memory };
    }

    // The script is the body of a strict function, as hooks were written for: a top-level
    // `return done(...)` is common. It opens on the script's first line so line numbers in
    // errors are the script's own. Evaluating a function expression only compiles it, so
    // an error here is the script's syntax.
    let source = format!("(function () {{ \"use strict\"; {script}\n}})");
    let mut options = EvalOptions::default();
    options.filename = Some(SCRIPT_FILE.to_owned());
    let function: Function = match ctx.eval_with_options(source, options) {
        Ok(function) => function,
        Err(e) => {
            return match failure(ctx, e) {
                Caught::Message(message) => Ending::Syntax(message),
                other => other.into(),
            };
        }
    };
    if let Err(e) = function.call::<_, Value>(()) {
        return failure(ctx, e).into();
    }
    // Let promises settle, so an async hook can reach `done`. What a job throws is dropped
    // (an unhandled rejection); running out of time still ends the loop and the run.
    while Instant::now() < deadline && ctx.execute_pending_job() {}
    Ending::Finished
}

/// Sets the inputs, `done`, `console` and the fixed clock as globals.
fn install<'js>(
    ctx: &Ctx<'js>,
    input_json: &str,
    input: &Map<String, serde_json::Value>,
    done: Rc<RefCell<Done>>,
    logs: Rc<RefCell<Vec<String>>>,
) -> rquickjs::Result<()> {
    let globals = ctx.globals();
    let values = ctx
        .json_parse(input_json)?
        .into_object()
        .ok_or(rquickjs::Error::Unknown)?;
    for key in input.keys() {
        let value: Value = values.get(key.as_str())?;
        globals.set(key.as_str(), value)?;
    }

    let meta_data: Value = globals.get("meta_data")?;
    let given: Value = match meta_data.as_object() {
        Some(meta) => meta.get("now")?,
        None => Value::new_undefined(ctx.clone()),
    };
    let started_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as f64)
        .unwrap_or(0.0);
    let clock: Function = ctx.eval(PRELUDE)?;
    clock.call::<_, ()>((given, started_ms))?;

    let record = Function::new(ctx.clone(), move |ctx: Ctx<'js>, value: Opt<Value<'js>>| {
        if !matches!(*done.borrow(), Done::NotCalled) {
            // The first call is the hook's answer, as with a callback.
            return Ok(());
        }
        let outcome = record_output(&ctx, value.0)?;
        *done.borrow_mut() = outcome;
        Ok::<_, rquickjs::Error>(())
    })?;
    globals.set("done", record)?;

    let console = Object::new(ctx.clone())?;
    for level in ["log", "info", "debug", "warn", "error"] {
        let logs = Rc::clone(&logs);
        let print = Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
            if logs.borrow().len() >= MAX_LOG_LINES {
                return Ok(());
            }
            let line = log_line(&ctx, level, args.0)?;
            logs.borrow_mut().push(line);
            Ok::<_, rquickjs::Error>(())
        })?;
        console.set(level, print)?;
    }
    globals.set("console", console)?;
    Ok(())
}

fn record_output<'js>(ctx: &Ctx<'js>, value: Option<Value<'js>>) -> rquickjs::Result<Done> {
    let Some(value) = value.filter(|v| !v.is_undefined()) else {
        return Ok(Done::Output(None));
    };
    if !value.is_object() || value.is_array() || value.is_function() {
        return Ok(Done::Refused(format!(
            "done() needs an object, not {}",
            kind_of(&value)
        )));
    }
    let json = match ctx.json_stringify(value) {
        Ok(json) => json,
        Err(rquickjs::Error::Exception) => {
            let thrown = ctx.catch();
            // Running out of time or memory is not the output's fault: let it end the run.
            if thrown.is_uncatchable_error() || is_out_of_memory(&thrown) {
                return Err(ctx.throw(thrown));
            }
            return Ok(Done::Refused(format!(
                "it cannot be turned into JSON ({})",
                describe(ctx, thrown)
            )));
        }
        Err(e) => return Err(e),
    };
    let Some(json) = json else {
        return Ok(Done::Output(None));
    };
    let json = json.to_string()?;
    if json.len() > MAX_OUTPUT_BYTES {
        return Ok(Done::Refused(format!(
            "its JSON is larger than {} MiB",
            MAX_OUTPUT_BYTES / (1024 * 1024)
        )));
    }
    Ok(Done::Output(Some(json)))
}

fn kind_of(value: &Value<'_>) -> &'static str {
    if value.is_null() {
        "null"
    } else if value.is_array() {
        "an array"
    } else if value.is_function() {
        "a function"
    } else if value.is_string() {
        "a string"
    } else if value.is_number() {
        "a number"
    } else if value.is_bool() {
        "a boolean"
    } else {
        "this value"
    }
}

fn log_line<'js>(ctx: &Ctx<'js>, level: &str, args: Vec<Value<'js>>) -> rquickjs::Result<String> {
    let mut line = match level {
        "warn" | "error" => format!("{level}: "),
        _ => String::new(),
    };
    for (i, arg) in args.into_iter().enumerate() {
        if line.len() > MAX_LOG_LINE_BYTES {
            break;
        }
        if i > 0 {
            line.push(' ');
        }
        // Logging never throws at the script (a Symbol, a cycle, a throwing toJSON print as
        // a placeholder), except that running out of time or memory still ends the run.
        let text = match show(ctx, arg) {
            Ok(text) => text,
            Err(rquickjs::Error::Exception) => {
                let thrown = ctx.catch();
                if thrown.is_uncatchable_error() || is_out_of_memory(&thrown) {
                    return Err(ctx.throw(thrown));
                }
                "[unprintable]".to_owned()
            }
            Err(e) => return Err(e),
        };
        line.push_str(&text);
    }
    truncate(&mut line, MAX_LOG_LINE_BYTES);
    Ok(line)
}

fn show<'js>(ctx: &Ctx<'js>, arg: Value<'js>) -> rquickjs::Result<String> {
    if !arg.is_object() || arg.is_function() {
        return Ok(arg.get::<Coerced<String>>()?.0);
    }
    match ctx.json_stringify(arg)? {
        Some(json) => json.to_string(),
        None => Ok("undefined".to_owned()),
    }
}

fn truncate(text: &mut String, max_bytes: usize) {
    if text.len() > max_bytes {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

enum Caught {
    Message(String),
    OutOfMemory,
    Null,
    Interrupted,
}

impl From<Caught> for Ending {
    fn from(caught: Caught) -> Self {
        match caught {
            Caught::Message(message) => Ending::Thrown(message),
            Caught::OutOfMemory => Ending::OutOfMemory,
            Caught::Null => Ending::ThrownNull,
            // The deadline flag decides the error; what is left is a formality.
            Caught::Interrupted => Ending::Thrown("interrupted".to_owned()),
        }
    }
}

fn failure(ctx: &Ctx<'_>, error: rquickjs::Error) -> Caught {
    match error {
        rquickjs::Error::Exception => caught(ctx),
        rquickjs::Error::Allocation => Caught::OutOfMemory,
        // Not from the script (e.g. a NUL byte in its text, which QuickJS cannot take).
        other => Caught::Message(other.to_string()),
    }
}

fn caught(ctx: &Ctx<'_>) -> Caught {
    let thrown = ctx.catch();
    if thrown.is_uncatchable_error() {
        Caught::Interrupted
    } else if is_out_of_memory(&thrown) {
        Caught::OutOfMemory
    } else if thrown.is_null() {
        Caught::Null
    } else {
        Caught::Message(describe(ctx, thrown))
    }
}

fn is_out_of_memory(thrown: &Value<'_>) -> bool {
    let Some(error) = thrown
        .as_object()
        .and_then(|o| Exception::from_object(o.clone()))
    else {
        return false;
    };
    let name: Option<Coerced<String>> = error.get("name").ok();
    name.is_some_and(|n| n.0 == "InternalError")
        && error.message().as_deref() == Some("out of memory")
}

/// `Name: message (line n)` for errors, the value itself for anything else thrown.
fn describe(ctx: &Ctx<'_>, thrown: Value<'_>) -> String {
    let mut text = match thrown
        .as_object()
        .and_then(|o| Exception::from_object(o.clone()))
    {
        Some(error) => {
            let name = error
                .get::<_, Coerced<String>>("name")
                .map(|n| n.0)
                .unwrap_or_else(|_| "Error".to_owned());
            let mut text = match error.message() {
                Some(message) if !message.is_empty() => format!("{name}: {message}"),
                _ => name,
            };
            if let Some(line) = error.stack().as_deref().and_then(script_line) {
                text.push_str(&format!(" (line {line})"));
            }
            text
        }
        None => thrown
            .get::<Coerced<String>>()
            .map(|s| s.0)
            .unwrap_or_else(|_| kind_of(&thrown).to_owned()),
    };
    // Whatever the message getters ran must not leave an exception behind.
    let _ = ctx.catch();
    if text.chars().count() > MAX_MESSAGE_CHARS {
        text = text.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
    }
    text
}

/// The line of the first stack frame in the hook's own text: `at f (hook:3:9)`.
fn script_line(stack: &str) -> Option<u32> {
    let marker = format!("{SCRIPT_FILE}:");
    stack.lines().find_map(|frame| {
        let rest = &frame[frame.find(&marker)? + marker.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_line_reads_the_first_frame_in_the_hook() {
        let stack = "    at f (hook:3:9)\n    at <anonymous> (hook:7:1)\n";
        assert_eq!(script_line(stack), Some(3));
        assert_eq!(script_line("    at hook:12:4\n"), Some(12));
        assert_eq!(script_line("    at JSON.parse (native)\n"), None);
    }

    #[test]
    fn truncate_cuts_at_a_character_boundary() {
        let mut text = "é".repeat(10);
        truncate(&mut text, 5);
        assert_eq!(text, "éé");
    }
}
