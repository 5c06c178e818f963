//! Feeds arbitrary text to every CEQL parser. Whatever parses must print, re-parse to the
//! same tree, evaluate and translate without panicking.

#![no_main]

use junction_ceql::{evaluate, parse, parse_fields, parse_order_by, translate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let chars = text.chars().count();
    match parse(text) {
        Ok(expr) => {
            let printed = expr.to_string();
            let reparsed = parse(&printed).expect("printed CEQL parses");
            assert!(reparsed.eq_ignoring_spans(&expr), "{printed:?} changed meaning");
            let record = serde_json::json!({"a": 1, "b": {"c": "x"}, "s": "2026-01-01"});
            let _ = evaluate(&expr, &record);
            let _ = translate::soql(&expr);
            let _ = translate::jql(&expr);
            let _ = translate::parameters(&expr, &[]);
        }
        Err(e) => assert!(e.column >= 1 && e.column <= chars + 1, "{e}"),
    }
    let _ = parse_order_by(text);
    let _ = parse_fields(text);
});
