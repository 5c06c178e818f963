//! CEQL, the `where` language of the Cloud Elements API, with no I/O.
//!
//! Parses `where`, `orderBy` and `fields` text into trees with byte spans and prints
//! them back canonically; evaluates, sorts and projects JSON records for vendors that
//! cannot do it themselves; and translates an expression into SOQL, JQL or a vendor's
//! filter parameters, refusing (never approximating) what the target cannot express.
//! It depends on no other Junction crate.

mod ast;
mod eval;
mod parse;
pub mod translate;

pub use ast::{DateValue, Expr, Field, Literal, Operator, Span};
pub use eval::{compare_records, evaluate, lookup, project};
pub use parse::{
    Direction, MAX_DEPTH, MAX_LENGTH, OrderBy, ParseError, parse, parse_field, parse_fields,
    parse_order_by,
};
