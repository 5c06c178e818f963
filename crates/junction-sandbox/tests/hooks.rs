use junction_sandbox::{HookError, HookResult, Limits, MAX_LOG_LINE_BYTES, MAX_LOG_LINES, Sandbox};
use serde_json::{Map, Value, json};
use std::time::Duration;

const HOOK: &str = "'preRequest' of resource 'GET /hubs/crm/contacts'";

fn input(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("test input must be an object"),
    }
}

/// Limits for tests not about time: generous, so a busy machine cannot turn another
/// outcome into a timeout.
fn roomy() -> Limits {
    Limits {
        time: Duration::from_secs(60),
        ..Limits::default()
    }
}

async fn run(script: &str, globals: Value) -> Result<HookResult, HookError> {
    Sandbox::new(roomy(), 2)
        .run(HOOK, script, input(globals))
        .await
}

async fn run_with(limits: Limits, script: &str) -> Result<HookResult, HookError> {
    Sandbox::new(limits, 2).run(HOOK, script, Map::new()).await
}

async fn output(script: &str, globals: Value) -> Map<String, Value> {
    match run(script, globals).await {
        Ok(result) => result.output,
        Err(e) => panic!("hook failed: {e}"),
    }
}

#[tokio::test]
async fn inputs_are_globals_and_done_keys_are_the_outputs() {
    let result = run(
        r#"
        const headers = Object.assign({}, request_vendor_headers, { "X-Page": String(request_parameters.page + 1) });
        done({
          request_vendor_headers: headers,
          request_vendor_path: request_vendor_path + "/v2",
          configuration: { "last.page": request_parameters.page },
        });
        "#,
        json!({
            "request_vendor_headers": {"Accept": "application/json"},
            "request_vendor_path": "/contacts",
            "request_parameters": {"page": 2},
        }),
    )
    .await
    .expect("hook runs");

    assert!(result.proceed);
    assert_eq!(
        Value::Object(result.output),
        json!({
            "request_vendor_headers": {"Accept": "application/json", "X-Page": "3"},
            "request_vendor_path": "/contacts/v2",
            "configuration": {"last.page": 2},
        })
    );
}

#[tokio::test]
async fn continue_false_stops_the_call_and_keeps_the_other_outputs() {
    let result = run(
        r#"done({ continue: false, response_body: { cached: true } });"#,
        json!({}),
    )
    .await
    .expect("hook runs");

    assert!(!result.proceed);
    assert_eq!(
        Value::Object(result.output),
        json!({"response_body": {"cached": true}})
    );
}

#[tokio::test]
async fn done_without_an_object_proceeds_with_no_outputs() {
    let result = run("done();", json!({})).await.expect("hook runs");

    assert!(result.proceed);
    assert!(result.output.is_empty());
}

#[tokio::test]
async fn a_top_level_return_ends_the_hook_and_the_first_done_counts() {
    let out = output(
        r#"
        if (response_iserror) {
          return done({ response_error: "first" });
        }
        done({ response_error: "second" });
        "#,
        json!({"response_iserror": true}),
    )
    .await;
    assert_eq!(out["response_error"], "first");

    let out = output(r#"done({ n: 1 }); done({ n: 2 });"#, json!({})).await;
    assert_eq!(out["n"], 1);
}

#[tokio::test]
async fn a_throw_names_the_hook_the_message_and_the_line() {
    let error = run(
        "const a = 1;\n\nthrow new TypeError('no contact id');\n",
        json!({}),
    )
    .await
    .expect_err("the hook throws");

    assert_eq!(
        error,
        HookError::Thrown {
            name: HOOK.to_owned(),
            message: "TypeError: no contact id (line 3)".to_owned(),
        }
    );
    assert_eq!(
        error.to_string(),
        format!("hook {HOOK} threw TypeError: no contact id (line 3)")
    );
}

#[tokio::test]
async fn throwing_a_value_that_is_not_an_error_reports_the_value() {
    let error = run("throw 'vendor said no';", json!({}))
        .await
        .expect_err("the hook throws");

    assert_eq!(
        error,
        HookError::Thrown {
            name: HOOK.to_owned(),
            message: "vendor said no".to_owned(),
        }
    );
}

#[tokio::test]
async fn strict_mode_is_enforced() {
    let error = run("undeclared = 1; done({});", json!({}))
        .await
        .expect_err("assigning an undeclared variable throws in strict mode");

    assert!(
        matches!(&error, HookError::Thrown { message, .. } if message.starts_with("ReferenceError")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_syntax_error_is_reported_as_such_with_its_line() {
    let error = run("done({ a: 1 });\nlet = = 2;\n", json!({}))
        .await
        .expect_err("the hook does not parse");

    match error {
        HookError::Syntax { name, message } => {
            assert_eq!(name, HOOK);
            assert!(message.starts_with("SyntaxError"), "{message}");
            assert!(message.ends_with("(line 2)"), "{message}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_script_that_never_calls_done_is_an_error() {
    let error = run("const x = 1 + 1;", json!({}))
        .await
        .expect_err("done is never called");

    assert_eq!(
        error,
        HookError::NoDone {
            name: HOOK.to_owned()
        }
    );
}

#[tokio::test]
async fn done_with_anything_but_an_object_is_a_bad_output() {
    for (script, kind) in [
        ("done('yes');", "a string"),
        ("done(42);", "a number"),
        ("done([1, 2]);", "an array"),
        ("done(null);", "null"),
        ("done(function () {});", "a function"),
    ] {
        let error = run(script, json!({})).await.expect_err(script);
        assert_eq!(
            error,
            HookError::BadOutput {
                name: HOOK.to_owned(),
                message: format!("done() needs an object, not {kind}"),
            },
            "{script}"
        );
    }
}

#[tokio::test]
async fn an_output_that_cannot_be_json_is_a_bad_output() {
    let error = run("const o = {}; o.self = o; done(o);", json!({}))
        .await
        .expect_err("a cycle has no JSON");

    assert!(
        matches!(&error, HookError::BadOutput { message, .. } if message.starts_with("it cannot be turned into JSON")),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_output_over_10_mib_is_a_bad_output() {
    let limits = Limits {
        memory_bytes: 128 * 1024 * 1024,
        ..roomy()
    };
    let error = run_with(
        limits,
        "done({ response_body: 'x'.repeat(10 * 1024 * 1024) });",
    )
    .await
    .expect_err("the output is too large");

    assert_eq!(
        error,
        HookError::BadOutput {
            name: HOOK.to_owned(),
            message: "its JSON is larger than 10 MiB".to_owned(),
        }
    );
}

#[tokio::test]
async fn an_infinite_loop_times_out() {
    let limits = Limits {
        time: Duration::from_millis(200),
        ..Limits::default()
    };
    let error = run_with(limits, "while (true) {}")
        .await
        .expect_err("loops");

    assert_eq!(
        error,
        HookError::Timeout {
            name: HOOK.to_owned(),
            limit: Duration::from_millis(200),
        }
    );
    assert_eq!(
        error.to_string(),
        "hook 'preRequest' of resource 'GET /hubs/crm/contacts' ran longer than 200 ms"
    );
}

#[tokio::test]
async fn catching_cannot_escape_the_time_limit() {
    let limits = Limits {
        time: Duration::from_millis(200),
        ..Limits::default()
    };
    let script = r#"
        for (;;) {
          try { while (true) {} } catch (e) {} finally { continue; }
        }
    "#;
    let error = run_with(limits, script).await.expect_err("loops");

    assert!(matches!(error, HookError::Timeout { .. }), "{error:?}");
}

#[tokio::test]
async fn the_time_limit_comes_from_limits() {
    // A million iterations cannot finish in a millisecond, and easily do in a minute.
    let script = "let n = 0; for (let i = 0; i < 1e6; i++) { n += i; } done({ n });";
    let short = Limits {
        time: Duration::from_millis(1),
        ..Limits::default()
    };
    let long = Limits {
        time: Duration::from_secs(60),
        ..Limits::default()
    };

    let error = run_with(short, script)
        .await
        .expect_err("too slow for 1 ms");
    let result = run_with(long, script).await.expect("fits in a minute");

    assert_eq!(
        error,
        HookError::Timeout {
            name: HOOK.to_owned(),
            limit: Duration::from_millis(1),
        }
    );
    assert_eq!(result.output["n"], json!(499_999_500_000_u64));
}

#[tokio::test]
async fn a_huge_string_hits_the_memory_limit() {
    let error = run("'x'.repeat(1e9); done({});", json!({}))
        .await
        .expect_err("a gigabyte does not fit");

    assert_eq!(
        error,
        HookError::Memory {
            name: HOOK.to_owned(),
            limit: 32 * 1024 * 1024,
        }
    );
    assert_eq!(
        error.to_string(),
        format!("hook {HOOK} needed more than 32 MiB of memory")
    );
}

#[tokio::test]
async fn an_endless_array_hits_the_memory_limit_and_the_next_run_is_fine() {
    let sandbox = Sandbox::new(roomy(), 1);
    let error = sandbox
        .run(
            HOOK,
            "const a = []; for (;;) { a.push({ i: a.length, s: 'y' + a.length }); }",
            Map::new(),
        )
        .await
        .expect_err("the array outgrows the heap");
    let next = sandbox.run(HOOK, "done({ ok: true });", Map::new()).await;

    assert!(matches!(error, HookError::Memory { .. }), "{error:?}");
    assert_eq!(next.expect("a fresh runtime").output["ok"], true);
}

#[tokio::test]
async fn the_memory_limit_comes_from_limits() {
    // About 8 MiB of string: too much for 4 MiB, room to spare in 64 MiB.
    let script = "const s = 'z'.repeat(8 * 1024 * 1024); done({ length: s.length });";
    let small = Limits {
        memory_bytes: 4 * 1024 * 1024,
        ..roomy()
    };
    let large = Limits {
        memory_bytes: 64 * 1024 * 1024,
        ..roomy()
    };

    let error = run_with(small, script).await.expect_err("8 MiB in 4 MiB");
    let result = run_with(large, script).await.expect("8 MiB in 64 MiB");

    assert_eq!(
        error,
        HookError::Memory {
            name: HOOK.to_owned(),
            limit: 4 * 1024 * 1024,
        }
    );
    assert_eq!(result.output["length"], 8 * 1024 * 1024);
}

#[tokio::test]
async fn inputs_count_against_the_memory_limit() {
    let limits = Limits {
        memory_bytes: 2 * 1024 * 1024,
        ..roomy()
    };
    let body = "b".repeat(4 * 1024 * 1024);
    let error = Sandbox::new(limits, 1)
        .run(
            HOOK,
            "done({});",
            input(json!({ "response_body": { "data": body } })),
        )
        .await
        .expect_err("a 4 MiB input in a 2 MiB heap");

    assert!(matches!(error, HookError::Memory { .. }), "{error:?}");
}

#[tokio::test]
async fn deep_recursion_is_an_error_not_a_crash() {
    let error = run("function f(n) { return f(n + 1) + 1; } f(0);", json!({}))
        .await
        .expect_err("the stack overflows");

    assert!(
        matches!(&error, HookError::Thrown { message, .. } if message.contains("stack")),
        "{error:?}"
    );
}

#[tokio::test]
async fn no_module_system_process_network_or_timers_are_available() {
    let out = output(
        r#"
        done({
          require: typeof require,
          process: typeof process,
          fetch: typeof fetch,
          XMLHttpRequest: typeof XMLHttpRequest,
          setTimeout: typeof setTimeout,
          std: typeof std,
          os: typeof os,
          performance: typeof performance,
          Proxy: typeof Proxy,
        });
        "#,
        json!({}),
    )
    .await;

    for (global, kind) in &out {
        assert_eq!(kind, "undefined", "{global} is available");
    }
    assert_eq!(out.len(), 9);
}

#[tokio::test]
async fn require_throws() {
    let error = run("const fs = require('fs'); done({});", json!({}))
        .await
        .expect_err("require is not defined");

    assert!(
        matches!(&error, HookError::Thrown { message, .. } if message.starts_with("ReferenceError")),
        "{error:?}"
    );
}

#[tokio::test]
async fn dynamic_import_is_refused() {
    let out = output(
        r#"
        import("fs").then(
          (fs) => done({ loaded: typeof fs }),
          (e) => done({ refused: e instanceof Error }),
        );
        "#,
        json!({}),
    )
    .await;

    assert_eq!(Value::Object(out), json!({"refused": true}));
}

#[tokio::test]
async fn an_async_hook_reaches_done_once_its_promises_settle() {
    let out = output(
        r#"
        async function page() { return request_parameters.page; }
        page().then((p) => done({ page: p + 1 }));
        "#,
        json!({"request_parameters": {"page": 1}}),
    )
    .await;

    assert_eq!(out["page"], 2);
}

#[tokio::test]
async fn promises_that_never_call_done_are_no_done() {
    let error = run("Promise.reject(new Error('lost'));", json!({}))
        .await
        .expect_err("nothing calls done");

    assert!(matches!(error, HookError::NoDone { .. }), "{error:?}");
}

#[tokio::test]
async fn an_endless_promise_chain_times_out() {
    let limits = Limits {
        time: Duration::from_millis(200),
        ..Limits::default()
    };
    let error = run_with(
        limits,
        // Each job queues the next and keeps nothing, so memory stays flat and only the
        // time limit can end it (a chain that nests promises runs out of memory first).
        "function again() { Promise.resolve().then(again); } again();",
    )
    .await
    .expect_err("the chain never ends");

    assert!(matches!(error, HookError::Timeout { .. }), "{error:?}");
}

#[tokio::test]
async fn static_import_is_a_syntax_error() {
    let error = run("import fs from 'fs'; done({});", json!({}))
        .await
        .expect_err("hooks are scripts, not modules");

    assert!(matches!(error, HookError::Syntax { .. }), "{error:?}");
}

#[tokio::test]
async fn prototype_pollution_does_not_reach_the_next_run() {
    let sandbox = Sandbox::new(roomy(), 1);
    sandbox
        .run(
            HOOK,
            r#"
            Object.prototype.polluted = 1;
            Array.prototype.map = function () { return ["hijacked"]; };
            JSON.stringify = function () { return '{"hijacked":true}'; };
            done({});
            "#,
            Map::new(),
        )
        .await
        .expect("polluting run");

    let out = sandbox
        .run(
            HOOK,
            r#"done({ polluted: ({}).polluted === undefined ? "no" : "yes", mapped: [1, 2].map(x => x * 2) });"#,
            Map::new(),
        )
        .await
        .expect("next run")
        .output;

    assert_eq!(
        Value::Object(out),
        json!({"polluted": "no", "mapped": [2, 4]})
    );
}

#[tokio::test]
async fn one_runs_globals_and_inputs_are_invisible_in_the_next() {
    let sandbox = Sandbox::new(roomy(), 1);
    sandbox
        .run(
            HOOK,
            "globalThis.stash = configuration['oauth.user.token']; var kept = 1; done({});",
            input(json!({"configuration": {"oauth.user.token": "tenant-a-secret"}})),
        )
        .await
        .expect("first run");

    let out = sandbox
        .run(
            HOOK,
            "done({ stash: typeof stash, kept: typeof kept, configuration: typeof configuration });",
            Map::new(),
        )
        .await
        .expect("second run")
        .output;

    assert_eq!(
        Value::Object(out),
        json!({"stash": "undefined", "kept": "undefined", "configuration": "undefined"})
    );
}

#[tokio::test]
async fn date_without_arguments_is_the_time_passed_in() {
    let out = output(
        r#"
        const d = new Date();
        done({
          iso: d.toISOString(),
          now: Date.now(),
          called: Date().includes("2026"),
          instance: d instanceof Date,
          constructed: new Date(0).toISOString(),
          fromParts: new Date(Date.UTC(2020, 0, 2)).toISOString(),
          viaPrototype: new (Object.getPrototypeOf(d).constructor)().getTime(),
        });
        "#,
        json!({"meta_data": {"now": "2026-01-02T03:04:05.678Z"}}),
    )
    .await;

    assert_eq!(
        Value::Object(out),
        json!({
            "iso": "2026-01-02T03:04:05.678Z",
            "now": 1_767_323_045_678_u64,
            "called": true,
            "instance": true,
            "constructed": "1970-01-01T00:00:00.000Z",
            "fromParts": "2020-01-02T00:00:00.000Z",
            "viaPrototype": 1_767_323_045_678_u64,
        })
    );
}

#[tokio::test]
async fn date_takes_epoch_milliseconds_too() {
    let out = output(
        "done({ now: new Date().getTime() });",
        json!({"meta_data": {"now": 86_400_000}}),
    )
    .await;

    assert_eq!(out["now"], 86_400_000);
}

#[tokio::test]
async fn meta_data_that_is_not_an_object_leaves_the_clock_frozen_at_the_start() {
    let out = output(
        "done({ same: Date.now() === new Date().getTime(), meta_data });",
        json!({"meta_data": "not an object"}),
    )
    .await;

    assert_eq!(
        Value::Object(out),
        json!({"same": true, "meta_data": "not an object"})
    );
}

#[tokio::test]
async fn the_clock_does_not_move_during_a_run() {
    let out = output(
        r#"
        const first = Date.now();
        let moved = false;
        for (let i = 0; i < 200000; i++) { if (Date.now() !== first) { moved = true; } }
        done({ moved });
        "#,
        json!({}),
    )
    .await;

    assert_eq!(out["moved"], false);
}

#[tokio::test]
async fn console_lines_are_captured_and_bounded() {
    let result = run(
        r#"
        console.log("page", 2, { a: 1 });
        console.warn("slow vendor");
        console.error("x".repeat(5000));
        const cycle = {}; cycle.self = cycle;
        console.info(Symbol("s"), cycle, "still here");
        for (let i = 0; i < 500; i++) { console.debug("line " + i); }
        done({});
        "#,
        json!({}),
    )
    .await
    .expect("hook runs");

    assert_eq!(result.logs.len(), MAX_LOG_LINES);
    assert_eq!(result.logs[0], r#"page 2 {"a":1}"#);
    assert_eq!(result.logs[1], "warn: slow vendor");
    assert_eq!(result.logs[2].len(), MAX_LOG_LINE_BYTES);
    assert!(result.logs[2].starts_with("error: xxx"));
    assert_eq!(result.logs[3], "[unprintable] [unprintable] still here");
    assert_eq!(result.logs[4], "line 0");
}

#[tokio::test]
async fn errors_do_not_carry_input_values() {
    let limits = Limits {
        time: Duration::from_millis(100),
        ..Limits::default()
    };
    let sandbox = Sandbox::new(limits, 1);
    let secret = json!({"configuration": {"oauth.user.token": "tok-4242-secret"}});
    for script in [
        "while (configuration['oauth.user.token']) {}",
        "const t = configuration['oauth.user.token'];",
        "done(configuration['oauth.user.token']);",
        "const t = configuration['oauth.user.token'].repeat(1e9);",
        "const t = configuration['oauth.user.token'] +;",
    ] {
        let error = sandbox
            .run(HOOK, script, input(secret.clone()))
            .await
            .expect_err(script);
        assert!(
            !format!("{error} {error:?}").contains("4242"),
            "{script}: {error:?}"
        );
    }
}

#[tokio::test]
async fn many_concurrent_runs_share_two_slots_and_all_complete() {
    let sandbox = Sandbox::new(roomy(), 2);
    let mut runs = tokio::task::JoinSet::new();
    for i in 0..24 {
        let sandbox = sandbox.clone();
        runs.spawn(async move {
            sandbox
                .run(
                    HOOK,
                    "let s = 0; for (let k = 0; k < 20000; k++) { s += k; } done({ i: meta_data.i, s });",
                    input(json!({"meta_data": {"i": i}})),
                )
                .await
        });
    }

    let mut seen = Vec::new();
    while let Some(joined) = runs.join_next().await {
        let result = joined.expect("task").expect("hook runs");
        assert_eq!(result.output["s"], 199_990_000);
        seen.push(result.output["i"].as_u64().expect("i"));
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..24).collect::<Vec<_>>());
}

const README_EXAMPLE: &str = r#"
// preRequest: page with the vendor's own parameter names; answer from configuration
// without a vendor call when the caller asks only for the account's currency.
if (request_parameters.fields === "currency") {
  return done({ continue: false, response_body: { currency: configuration["account.currency"] } });
}
const page = Number(request_parameters.page || 1);
done({
  request_vendor_parameters: Object.assign({}, request_vendor_parameters, {
    offset: (page - 1) * 100, count: 100,
  }),
  request_vendor_headers: { "X-Requested-At": new Date().toISOString() },
});
"#;

#[tokio::test]
async fn the_readme_example_pages_and_answers_without_the_vendor() {
    let globals = |parameters: Value| {
        json!({
            "request_parameters": parameters,
            "request_vendor_parameters": {"list": "contacts"},
            "configuration": {"account.currency": "EUR"},
            "meta_data": {"now": "2026-11-26T12:00:00Z"},
        })
    };

    let paged = run(README_EXAMPLE, globals(json!({"page": "3"})))
        .await
        .expect("paging run");
    let answered = run(README_EXAMPLE, globals(json!({"fields": "currency"})))
        .await
        .expect("short-circuit run");

    assert!(paged.proceed);
    assert_eq!(
        Value::Object(paged.output),
        json!({
            "request_vendor_parameters": {"list": "contacts", "offset": 200, "count": 100},
            "request_vendor_headers": {"X-Requested-At": "2026-11-26T12:00:00.000Z"},
        })
    );
    assert!(!answered.proceed);
    assert_eq!(
        Value::Object(answered.output),
        json!({"response_body": {"currency": "EUR"}})
    );
}

#[tokio::test]
async fn catastrophic_regex_backtracking_times_out() {
    let limits = Limits {
        time: Duration::from_millis(200),
        ..Limits::default()
    };
    let error = run_with(
        limits,
        "const hit = /^(a+)+$/.test('a'.repeat(40) + 'b'); done({ hit });",
    )
    .await
    .expect_err("backtracks for ages");

    assert!(matches!(error, HookError::Timeout { .. }), "{error:?}");
}

#[tokio::test]
async fn outputs_travel_as_json() {
    let out = output(
        "done({ gone: undefined, f() { return 1; }, big: 2 ** 53, when: new Date(0), nested: { n: null } });",
        json!({}),
    )
    .await;

    assert_eq!(
        Value::Object(out),
        json!({"big": 9_007_199_254_740_992_u64, "when": "1970-01-01T00:00:00.000Z", "nested": {"n": null}})
    );
}
