//! Escaping text for the markup the harness writes: JUnit XML, the
//! nightly summary page, `report.html` and `chaos serve`'s pages. One
//! escape serves all of them: what is safe in XML 1.0 is safe in HTML.

/// Escapes text for element content and quoted attribute values (XML and
/// HTML); drops control characters XML 1.0 cannot carry.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}
