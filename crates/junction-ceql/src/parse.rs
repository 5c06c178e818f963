//! Lexer and recursive-descent parser for `where`, `orderBy` and `fields`.
//!
//! Grammar (keywords case-insensitive):
//! ```text
//! expr      := and (OR and)*
//! and       := unary (AND unary)*
//! unary     := NOT unary | '(' expr ')' | predicate
//! predicate := field ( cmp literal | [NOT] LIKE string | [NOT] IN '(' literal (',' literal)* ')'
//!                    | IS [NOT] NULL )
//! field     := segment ('.' segment)*      segment := name | '`' any, with `` for ` '`'
//! cmp       := '=' | '!=' | '<>' | '<' | '>' | '<=' | '>='
//! literal   := string | number | TRUE | FALSE | NULL
//! ```

use crate::ast::{
    Expr, Field, Literal, Operator, Span, is_ident_continue, is_ident_start, parse_number,
};

/// Longest input accepted, in bytes. Queries arrive in URLs; anything longer is hostile or
/// a mistake, and the bound keeps every pass over the tree cheap.
pub const MAX_LENGTH: usize = 8 * 1024;
/// Deepest nesting of parentheses and `NOT`s accepted: recursion is bounded by it, so
/// hostile input cannot exhaust the stack.
pub const MAX_DEPTH: usize = 64;

/// A syntax error at a 1-based column counted in characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at column {column}")]
pub struct ParseError {
    pub message: String,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare name (keywords included; the parser decides).
    Name(String),
    /// A backticked name.
    Quoted(String),
    Str(String),
    Number(serde_json::Number),
    LParen,
    RParen,
    Comma,
    Dot,
    Cmp(Operator),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    span: Span,
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Name(n) => format!("'{n}'"),
        Tok::Quoted(n) => format!("the name `{n}`"),
        Tok::Str(s) => format!("the string '{}'", s.replace('\'', "''")),
        Tok::Number(n) => format!("the number {n}"),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Dot => "'.'".into(),
        Tok::Cmp(op) => format!("'{op}'"),
        Tok::End => "the end of the query".into(),
    }
}

struct Source<'a> {
    text: &'a str,
}

impl Source<'_> {
    fn column(&self, byte: usize) -> usize {
        self.text
            .get(..byte)
            .map_or(self.text.chars().count(), |s| s.chars().count())
            + 1
    }

    fn error(&self, byte: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            message: message.into(),
            column: self.column(byte),
        }
    }
}

fn lex(src: &Source<'_>) -> Result<Vec<Token>, ParseError> {
    let text = src.text;
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let single = |tok: Tok| Token {
            tok,
            span: Span::new(start, start + c.len_utf8()),
        };
        match c {
            '(' | ')' | ',' | '.' | '=' => {
                chars.next();
                tokens.push(single(match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    ',' => Tok::Comma,
                    '.' => Tok::Dot,
                    _ => Tok::Cmp(Operator::Eq),
                }));
            }
            '!' | '<' | '>' => {
                chars.next();
                let next = chars.peek().map(|&(_, n)| n);
                let (op, len) = match (c, next) {
                    ('!', Some('=')) => (Operator::Ne, 2),
                    ('<', Some('>')) => (Operator::Ne, 2),
                    ('<', Some('=')) => (Operator::Le, 2),
                    ('>', Some('=')) => (Operator::Ge, 2),
                    ('<', _) => (Operator::Lt, 1),
                    ('>', _) => (Operator::Gt, 1),
                    _ => return Err(src.error(start, "expected '!=' but found a lone '!'")),
                };
                if len == 2 {
                    chars.next();
                }
                tokens.push(Token {
                    tok: Tok::Cmp(op),
                    span: Span::new(start, start + len),
                });
            }
            '\'' | '`' => {
                chars.next();
                let mut value = String::new();
                let mut end = None;
                while let Some((i, ch)) = chars.next() {
                    if ch == c {
                        if chars.peek().is_some_and(|&(_, n)| n == c) {
                            chars.next();
                            value.push(c);
                        } else {
                            end = Some(i + 1);
                            break;
                        }
                    } else {
                        value.push(ch);
                    }
                }
                let Some(end) = end else {
                    let what = if c == '\'' {
                        "string"
                    } else {
                        "backticked name"
                    };
                    return Err(src.error(
                        start,
                        format!("unterminated {what}: this {c} is never closed"),
                    ));
                };
                let tok = if c == '\'' {
                    Tok::Str(value)
                } else if value.is_empty() {
                    return Err(src.error(start, "expected a name between the backticks"));
                } else {
                    Tok::Quoted(value)
                };
                tokens.push(Token {
                    tok,
                    span: Span::new(start, end),
                });
            }
            c if c == '-' || c.is_ascii_digit() => {
                let end = number_end(text, start);
                let literal = &text[start..end];
                let number = parse_number(literal).ok_or_else(|| {
                    if literal == "-" {
                        src.error(start, "expected a number after '-'")
                    } else {
                        src.error(start, format!("'{literal}' is not a number JSON can hold"))
                    }
                })?;
                while chars.peek().is_some_and(|&(i, _)| i < end) {
                    chars.next();
                }
                if let Some(&(i, n)) = chars.peek()
                    && is_ident_continue(n)
                {
                    return Err(src.error(i, format!("unexpected '{n}' right after a number")));
                }
                tokens.push(Token {
                    tok: Tok::Number(number),
                    span: Span::new(start, end),
                });
            }
            c if is_ident_start(c) => {
                let mut end = start;
                while let Some(&(i, n)) = chars.peek() {
                    if !is_ident_continue(n) {
                        break;
                    }
                    end = i + n.len_utf8();
                    chars.next();
                }
                tokens.push(Token {
                    tok: Tok::Name(text[start..end].to_string()),
                    span: Span::new(start, end),
                });
            }
            other => {
                return Err(src.error(start, format!("unexpected character '{other}'")));
            }
        }
    }
    tokens.push(Token {
        tok: Tok::End,
        span: Span::new(text.len(), text.len()),
    });
    Ok(tokens)
}

/// The end of the JSON-shaped number starting at `start`: `-?digits(.digits)?(e[+-]?digits)?`.
/// Malformed pieces are included so the error names the whole literal.
fn number_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let mut i = start;
    if bytes.get(i) == Some(&b'-') {
        i += 1;
    }
    let digits = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    i = digits(i);
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i = digits(i + 1);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if bytes.get(j).is_some_and(u8::is_ascii_digit) {
            i = digits(j);
        }
    }
    i
}

fn check_length(src: &Source<'_>) -> Result<(), ParseError> {
    if src.text.len() > MAX_LENGTH {
        let mut at = MAX_LENGTH;
        while !src.text.is_char_boundary(at) {
            at -= 1;
        }
        return Err(src.error(
            at,
            format!(
                "the query is too long ({} bytes; at most {MAX_LENGTH})",
                src.text.len()
            ),
        ));
    }
    Ok(())
}

struct Parser<'a> {
    src: Source<'a>,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

fn is_keyword(tok: &Tok, keyword: &str) -> bool {
    matches!(tok, Tok::Name(n) if n.eq_ignore_ascii_case(keyword))
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Self, ParseError> {
        let src = Source { text };
        check_length(&src)?;
        let tokens = lex(&src)?;
        Ok(Self {
            src,
            tokens,
            pos: 0,
            depth: 0,
        })
    }

    fn peek(&self) -> &Token {
        // `lex` always ends with `End`, and `advance` never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        token
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        is_keyword(&self.peek().tok, keyword)
    }

    fn expected(&self, what: &str) -> ParseError {
        let token = self.peek();
        self.src.error(
            token.span.start,
            format!("expected {what}, found {}", describe(&token.tok)),
        )
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<Token, ParseError> {
        if self.peek().tok == tok {
            Ok(self.advance())
        } else {
            Err(self.expected(what))
        }
    }

    fn finish(&self) -> Result<(), ParseError> {
        match &self.peek().tok {
            Tok::End => Ok(()),
            Tok::RParen => Err(self.expected("AND, OR or the end of the query (unbalanced ')')")),
            _ => Err(self.expected("AND, OR or the end of the query")),
        }
    }

    fn descend(&mut self, at: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.src.error(
                at,
                format!("the query nests parentheses and NOTs more than {MAX_DEPTH} deep"),
            ));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.chain("OR", Self::and)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        self.chain("AND", Self::unary)
    }

    fn chain(
        &mut self,
        keyword: &str,
        operand: fn(&mut Self) -> Result<Expr, ParseError>,
    ) -> Result<Expr, ParseError> {
        let first = operand(self)?;
        if !self.at_keyword(keyword) {
            return Ok(first);
        }
        let start = first.span().start;
        let mut operands = vec![first];
        while self.at_keyword(keyword) {
            self.advance();
            operands.push(operand(self)?);
        }
        let span = Span::new(start, operands.last().map_or(start, |e| e.span().end));
        Ok(if keyword == "AND" {
            Expr::And { operands, span }
        } else {
            Expr::Or { operands, span }
        })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let token = self.peek().clone();
        if is_keyword(&token.tok, "not") {
            self.advance();
            self.descend(token.span.start)?;
            let operand = self.unary()?;
            self.depth -= 1;
            let span = Span::new(token.span.start, operand.span().end);
            return Ok(Expr::Not {
                operand: Box::new(operand),
                span,
            });
        }
        if token.tok == Tok::LParen {
            self.advance();
            self.descend(token.span.start)?;
            let inner = self.expr()?;
            self.expect(Tok::RParen, "')' or AND or OR")?;
            self.depth -= 1;
            return Ok(inner);
        }
        self.predicate()
    }

    fn field(&mut self) -> Result<(Field, Span), ParseError> {
        let mut segments = Vec::new();
        let start = self.peek().span.start;
        let mut end;
        loop {
            let token = self.peek().clone();
            match token.tok {
                Tok::Name(name) if !is_reserved(&name) => segments.push(name),
                Tok::Quoted(name) => segments.push(name),
                _ if segments.is_empty() => return Err(self.expected("a field name")),
                _ => return Err(self.expected("a field name after '.'")),
            }
            end = token.span.end;
            self.advance();
            if self.peek().tok != Tok::Dot {
                break;
            }
            self.advance();
        }
        Ok((Field { segments }, Span::new(start, end)))
    }

    fn literal(&mut self) -> Result<(Literal, Span), ParseError> {
        let token = self.peek().clone();
        let literal = match &token.tok {
            Tok::Str(s) => Literal::String(s.clone()),
            Tok::Number(n) => Literal::Number(n.clone()),
            Tok::Name(n) if n.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Name(n) if n.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Tok::Name(n) if n.eq_ignore_ascii_case("null") => Literal::Null,
            _ => {
                return Err(self
                    .expected("a value (a quoted string or date, a number, true, false or null)"));
            }
        };
        self.advance();
        Ok((literal, token.span))
    }

    fn predicate(&mut self) -> Result<Expr, ParseError> {
        let (field, field_span) = self.field()?;
        let start = field_span.start;
        let token = self.peek().clone();
        if let Tok::Cmp(op) = token.tok {
            self.advance();
            let (value, value_span) = self.literal()?;
            return Ok(Expr::Compare {
                field,
                op,
                value,
                span: Span::new(start, value_span.end),
            });
        }
        if is_keyword(&token.tok, "is") {
            self.advance();
            let negated = self.at_keyword("not");
            if negated {
                self.advance();
            }
            if !self.at_keyword("null") {
                return Err(self.expected(if negated { "NULL" } else { "NULL or NOT NULL" }));
            }
            let end = self.advance().span.end;
            return Ok(Expr::IsNull {
                field,
                negated,
                span: Span::new(start, end),
            });
        }
        let negated = is_keyword(&token.tok, "not");
        if negated {
            self.advance();
        }
        let inner = if self.at_keyword("like") {
            self.advance();
            let pattern_token = self.peek().clone();
            let Tok::Str(pattern) = pattern_token.tok else {
                return Err(self.expected("a quoted pattern after LIKE"));
            };
            self.advance();
            Expr::Like {
                field,
                pattern,
                span: Span::new(start, pattern_token.span.end),
            }
        } else if self.at_keyword("in") {
            self.advance();
            self.expect(Tok::LParen, "'(' after IN")?;
            let mut values = vec![self.literal()?.0];
            while self.peek().tok == Tok::Comma {
                self.advance();
                values.push(self.literal()?.0);
            }
            let end = self
                .expect(Tok::RParen, "',' or ')' in the IN list")?
                .span
                .end;
            Expr::In {
                field,
                values,
                span: Span::new(start, end),
            }
        } else if negated {
            return Err(self.expected("LIKE or IN after NOT"));
        } else {
            return Err(self.expected(&format!(
                "an operator (=, !=, <>, <, >, <=, >=, LIKE, IN, IS NULL, IS NOT NULL) after {field}"
            )));
        };
        Ok(if negated {
            let span = inner.span();
            Expr::Not {
                operand: Box::new(inner),
                span,
            }
        } else {
            inner
        })
    }
}

/// Keywords that cannot start a bare field name. `true`, `false` and `null` are values,
/// and the others are operators; backticks make any of them a name.
fn is_reserved(name: &str) -> bool {
    crate::ast::KEYWORDS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(name))
}

/// Parses a `where` expression.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser::new(src)?;
    if parser.peek().tok == Tok::End {
        return Err(parser.expected("a condition"));
    }
    let expr = parser.expr()?;
    parser.finish()?;
    Ok(expr)
}

/// Parses one field name in CEQL notation (`Name`, `address.city`, `` `a.b` ``).
pub fn parse_field(src: &str) -> Result<Field, ParseError> {
    let mut parser = Parser::new(src)?;
    let (field, _) = parser.field()?;
    if parser.peek().tok != Tok::End {
        return Err(parser.expected("the end of the field name"));
    }
    Ok(field)
}

/// Sort direction of one `orderBy` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Asc,
    Desc,
}

/// `orderBy`: fields in CEQL notation with their directions, most significant first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrderBy(pub Vec<(String, Direction)>);

/// Parses `orderBy`: `Name asc, CreatedDate desc` (direction optional, ascending by default).
pub fn parse_order_by(src: &str) -> Result<OrderBy, ParseError> {
    let mut parser = Parser::new(src)?;
    let mut keys = Vec::new();
    loop {
        let (field, _) = parser.field()?;
        let direction = if parser.at_keyword("asc") {
            parser.advance();
            Direction::Asc
        } else if parser.at_keyword("desc") {
            parser.advance();
            Direction::Desc
        } else {
            Direction::Asc
        };
        keys.push((field.to_string(), direction));
        match parser.peek().tok {
            Tok::Comma => {
                parser.advance();
            }
            Tok::End => break,
            _ => return Err(parser.expected("ASC, DESC, ',' or the end of orderBy")),
        }
    }
    Ok(OrderBy(keys))
}

/// Parses `fields`: `Id,Name,` `` `a.b` `` into names in canonical CEQL notation.
pub fn parse_fields(src: &str) -> Result<Vec<String>, ParseError> {
    let mut parser = Parser::new(src)?;
    let mut fields = Vec::new();
    loop {
        let (field, _) = parser.field()?;
        fields.push(field.to_string());
        match parser.peek().tok {
            Tok::Comma => {
                parser.advance();
            }
            Tok::End => break,
            _ => return Err(parser.expected("',' or the end of fields")),
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> ParseError {
        match parse(src) {
            Err(e) => e,
            Ok(e) => panic!("{src:?} parsed as {e:?}"),
        }
    }

    #[test]
    fn syntax_error_names_the_column_of_the_unexpected_token() {
        let e = err("LastModifiedDate > ");
        assert_eq!(e.column, 20);
        let e = err("Name = 'a' AND Id");
        assert_eq!(e.column, 18, "{e}");
        assert!(e.message.contains("expected an operator"), "{e}");
        assert!(e.to_string().ends_with("at column 18"), "{e}");
        let e = err("Name = 'Churro'' AND x = 1 )");
        assert_eq!(e.column, 8, "{e}");
        assert!(e.message.contains("unterminated string"), "{e}");
    }

    #[test]
    fn error_column_counts_characters_not_bytes() {
        let e = err("Name = 'ééé' AND # = 1");
        assert_eq!(e.column, 18, "{e}");
        assert!(e.message.contains("'#'"), "{e}");
    }

    #[test]
    fn error_says_what_was_expected_and_found() {
        let e = err("Name = 'a' OR");
        assert_eq!(
            e.to_string(),
            "expected a field name, found the end of the query at column 14"
        );
        let e = err("(Name = 'a'");
        assert!(e.message.contains("expected ')'"), "{e}");
        let e = err("Name = 'a')");
        assert!(e.message.contains("unbalanced ')'"), "{e}");
        assert_eq!(e.column, 11);
        let e = err("Name IN ()");
        assert!(e.message.contains("expected a value"), "{e}");
        let e = err("Name LIKE 5");
        assert!(e.message.contains("quoted pattern"), "{e}");
        let e = err("Name IS 5");
        assert!(e.message.contains("NULL or NOT NULL"), "{e}");
        let e = err("");
        assert_eq!(e.column, 1);
        let e = err("a ! b");
        assert!(e.message.contains("lone '!'"), "{e}");
        let e = err("a = 12ab");
        assert!(e.message.contains("right after a number"), "{e}");
        let e = err("a = -");
        assert!(e.message.contains("number after '-'"), "{e}");
        let e = err("a = 1e999");
        assert!(e.message.contains("not a number JSON can hold"), "{e}");
    }

    #[test]
    fn nesting_beyond_the_limit_is_a_parse_error_not_a_crash() {
        let deep = format!("{}a = 1{}", "(".repeat(10_000), ")".repeat(10_000));
        let e = err(&deep[..MAX_LENGTH]);
        assert!(e.message.contains("more than 64 deep"), "{e}");
        assert_eq!(e.column, MAX_DEPTH + 1);
        let nots = format!("{}a = 1", "NOT ".repeat(65));
        assert!(err(&nots).message.contains("deep"));
        let ok = format!("{}a = 1{}", "(".repeat(64), ")".repeat(64));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn input_beyond_the_length_limit_is_a_parse_error() {
        let long = format!("a = '{}'", "x".repeat(MAX_LENGTH));
        let e = err(&long);
        assert!(e.message.contains("too long"), "{e}");
        assert_eq!(e.column, MAX_LENGTH + 1);
    }

    #[test]
    fn keywords_are_case_insensitive_and_ne_has_two_spellings() {
        let a = parse("a <> 1 and not b like 'x%' Or c iS nOt NuLl").expect("parses");
        let b = parse("a != 1 AND NOT b LIKE 'x%' OR c IS NOT NULL").expect("parses");
        assert!(a.eq_ignoring_spans(&b));
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_tighter_than_and() {
        let e = parse("a = 1 OR b = 2 AND NOT c = 3").expect("parses");
        let Expr::Or { operands, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(matches!(operands[0], Expr::Compare { .. }));
        let Expr::And {
            operands: inner, ..
        } = &operands[1]
        else {
            panic!("{e:?}")
        };
        assert!(matches!(inner[1], Expr::Not { .. }));
    }

    #[test]
    fn strings_double_their_quotes_and_names_may_be_backticked_paths() {
        let e = parse("Name='Churro''s Test Account' AND `a.b c`.d = 1 AND address.city = 'X'")
            .expect("parses");
        let Expr::And { operands, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            operands[0],
            Expr::Compare {
                field: Field::single("Name"),
                op: Operator::Eq,
                value: Literal::String("Churro's Test Account".into()),
                span: Span::new(0, 29),
            }
        );
        assert_eq!(
            operands[1].field(),
            Some(&Field::new(vec!["a.b c".into(), "d".into()]))
        );
        assert_eq!(
            operands[2].field(),
            Some(&Field::new(vec!["address".into(), "city".into()]))
        );
        assert_eq!(
            e.fields().into_iter().collect::<Vec<_>>(),
            vec!["Name", "`a.b c`.d", "address.city"]
        );
    }

    #[test]
    fn numbers_booleans_null_and_dates_are_literals() {
        let e = parse(
            "a = -12.5 AND b = 3 AND c = true AND d = FALSE AND e = null AND f > '2026-01-01T00:00:00Z' AND g IN (1, 'x', 2e3)",
        )
        .expect("parses");
        let Expr::And { operands, .. } = &e else {
            panic!("{e:?}")
        };
        let value = |i: usize| match &operands[i] {
            Expr::Compare { value, .. } => value.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(value(0), Literal::Number("-12.5".parse().expect("number")));
        assert_eq!(value(1), Literal::Number(3.into()));
        assert_eq!(value(2), Literal::Bool(true));
        assert_eq!(value(3), Literal::Bool(false));
        assert_eq!(value(4), Literal::Null);
        assert!(value(5).as_date().is_some());
        assert!(matches!(&operands[6], Expr::In { values, .. } if values.len() == 3));
    }

    #[test]
    fn not_like_and_not_in_are_negations() {
        let e = parse("a NOT LIKE 'x%' AND b NOT IN (1)").expect("parses");
        assert_eq!(e.to_string(), "NOT a LIKE 'x%' AND NOT b IN (1)");
        let ops: Vec<_> = e.operators().into_iter().collect();
        assert_eq!(
            ops,
            vec![Operator::Like, Operator::In, Operator::And, Operator::Not]
        );
    }

    #[test]
    fn printing_is_canonical_and_reparses_to_the_same_tree() {
        for (src, printed) in [
            ("a=1 and (b=2 or c=3)", "a = 1 AND (b = 2 OR c = 3)"),
            ("(a=1 and b=2) and c=3", "(a = 1 AND b = 2) AND c = 3"),
            ("((a=1))", "a = 1"),
            ("not (a=1 or `and`='x''y')", "NOT (a = 1 OR `and` = 'x''y')"),
            ("x.`y z` is not null", "x.`y z` IS NOT NULL"),
            (
                "`a``b` in (true, null, -1.5)",
                "`a``b` IN (true, null, -1.5)",
            ),
        ] {
            let e = parse(src).expect("parses");
            assert_eq!(e.to_string(), printed);
            assert!(parse(printed).expect("reparses").eq_ignoring_spans(&e));
        }
    }

    #[test]
    fn spans_cover_each_node() {
        let src = "a = 1 AND NOT b IS NULL";
        let e = parse(src).expect("parses");
        assert_eq!(e.span(), Span::new(0, src.len()));
        let Expr::And { operands, .. } = &e else {
            panic!()
        };
        assert_eq!(
            &src[operands[1].span().start..operands[1].span().end],
            "NOT b IS NULL"
        );
    }

    #[test]
    fn order_by_and_fields_parse_lists_of_names() {
        let order = parse_order_by("Name asc, CreatedDate DESC, `a.b`").expect("parses");
        assert_eq!(
            order.0,
            vec![
                ("Name".to_string(), Direction::Asc),
                ("CreatedDate".to_string(), Direction::Desc),
                ("`a.b`".to_string(), Direction::Asc),
            ]
        );
        assert_eq!(
            parse_fields("Id, Name,`a.b`,address.city").expect("parses"),
            vec!["Id", "Name", "`a.b`", "address.city"]
        );
        let e = parse_fields("Id,,Name").expect_err("fails");
        assert_eq!(e.column, 4);
        let e = parse_order_by("Name sideways").expect_err("fails");
        assert!(e.message.contains("ASC, DESC"), "{e}");
        assert!(parse_field("a.").is_err());
    }
}
