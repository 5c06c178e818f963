//! Cloud Elements strips HTML from instance names and tags (`<a href=…>x</a>` becomes `x`),
//! so a name shown in someone's console can never carry markup.

/// Removes every `<…>` tag, decodes the common entities, and trims the result.
pub fn strip_html(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut in_tag = false;
    for c in input.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = out
        .replace("&lt;", "")
        .replace("&gt;", "")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    decoded.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::strip_html;

    #[test]
    fn strips_tags_and_keeps_text() {
        assert_eq!(
            strip_html("<a href=\"http://x\">churros-xss</a>"),
            "churros-xss"
        );
        assert_eq!(strip_html("<script>alert(1)</script>Name"), "alert(1)Name");
        assert_eq!(strip_html("  plain name "), "plain name");
    }

    #[test]
    fn encoded_angle_brackets_cannot_smuggle_a_tag() {
        assert_eq!(strip_html("&lt;b&gt;x"), "bx");
    }
}
