//! Finding where in a scenario file a timeline entry starts, for error
//! messages about values that only make sense together (unknown nodes,
//! overlapping faults): serde_yaml gives positions for syntax and type
//! errors only.

/// `(line, column)` (1-based) of the `index`-th item of `faults.timeline`.
pub fn timeline_entry(text: &str, index: usize) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let key = lines.iter().position(|l| l.trim_start().starts_with("timeline:"))?;
    let key_indent = indent(lines[key]);
    let mut item_indent = None;
    let mut seen = 0;
    for (number, line) in lines.iter().enumerate().skip(key + 1) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let here = indent(line);
        if here < key_indent || (here == key_indent && !trimmed.starts_with('-')) {
            return None;
        }
        if trimmed.starts_with('-') && *item_indent.get_or_insert(here) == here {
            if seen == index {
                return Some((number + 1, here + 1));
            }
            seen += 1;
        }
    }
    None
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nth_timeline_item() {
        let text = "faults:\n  timeline:\n    # first\n    - at: 1s\n      fault: kill\n    - {at: 5s, fault: pause}\nseed: 1\n";
        assert_eq!(timeline_entry(text, 0), Some((4, 5)));
        assert_eq!(timeline_entry(text, 1), Some((6, 5)));
        assert_eq!(timeline_entry(text, 2), None);
    }
}
