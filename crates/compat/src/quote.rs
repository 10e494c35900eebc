//! Quoting what a caller sent into messages: short values whole, long ones cut to a prefix with
//! their length, so an error about a 5 MiB value is still a short error. Every message of the
//! suite that repeats a caller's value goes through [`quote`]; [`bounded`] cuts a whole message
//! that may have picked such values up elsewhere (a library's error text).

use std::fmt;

/// Values up to this many characters are quoted whole.
pub const MAX_QUOTED_CHARS: usize = 64;
/// How much of a longer value is shown.
const PREFIX_CHARS: usize = 32;
/// Messages up to this many characters are kept whole by [`bounded`].
pub const MAX_MESSAGE_CHARS: usize = 512;

/// `text` quoted for a message: `"greeter"`, or `"aaaa…" (100000 characters)` when long.
/// Control characters and quotes are escaped as Rust's `{:?}` escapes them.
pub fn quote(text: &str) -> Quoted<'_> {
    Quoted(text)
}

/// See [`quote`].
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.chars().nth(MAX_QUOTED_CHARS).is_none() {
            return write!(f, "{:?}", self.0);
        }
        let prefix_end = self
            .0
            .char_indices()
            .nth(PREFIX_CHARS)
            .map_or(self.0.len(), |(i, _)| i);
        let escaped = format!("{:?}", &self.0[..prefix_end]);
        let open = &escaped[..escaped.len() - 1]; // without the closing quote
        write!(f, "{open}…\" ({} characters)", self.0.chars().count())
    }
}

/// `message` whole when it is at most [`MAX_MESSAGE_CHARS`] characters, else its beginning
/// with how long it was.
pub fn bounded(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => message.to_owned(),
        Some((cut, _)) => format!(
            "{}… ({} characters in all)",
            &message[..cut],
            message.chars().count()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole() {
        assert_eq!(quote("greeter").to_string(), "\"greeter\"");
        assert_eq!(quote("a\"b\n").to_string(), "\"a\\\"b\\n\"");
        let exactly = "x".repeat(MAX_QUOTED_CHARS);
        assert_eq!(quote(&exactly).to_string(), format!("\"{exactly}\""));
    }

    #[test]
    fn long_values_become_a_prefix_and_a_length() {
        let long = "a".repeat(100_000);
        assert_eq!(
            quote(&long).to_string(),
            format!("\"{}…\" (100000 characters)", "a".repeat(32))
        );
        // Multi-byte characters are never split, and escapes stay whole.
        let wide = "é\u{0}".repeat(1000);
        let quoted = quote(&wide).to_string();
        assert!(quoted.ends_with("…\" (2000 characters)"), "{quoted}");
        assert!(quoted.len() < 200, "{quoted}");
    }

    #[test]
    fn long_messages_are_cut() {
        assert_eq!(bounded("short"), "short");
        let long = "ü".repeat(10_000);
        let cut = bounded(&long);
        assert!(cut.starts_with(&"ü".repeat(MAX_MESSAGE_CHARS)));
        assert!(cut.ends_with("… (10000 characters in all)"), "{cut}");
    }
}
