//! Text from outside (a token, a request header, a form parameter) on its way into a
//! message, a log line, a JSON body or an HTTP header: escaped and bounded, in one
//! place, so that no caller has to remember how.
//!
//! Why: a value an attacker chose must not forge log lines (a newline or carriage
//! return starts a new line in a text log; ESC starts a terminal control sequence;
//! Unicode bidi controls reorder what an operator reads), and must not make an
//! answer or a log line as long as the attacker likes (an 11,000-character `kid` was
//! once echoed whole into a body and a `WWW-Authenticate` header).
//!
//! - [`escaped`] borrows a value and displays it escaped and cut to [`MAX_CHARS`]
//!   characters, with [`ELLIPSIS`] where it was cut. [`Untrusted`] is the same, owned
//!   (for error types that keep the value), holding at most the bound.
//! - [`for_header`] displays a whole message (which may already contain escaped
//!   values) in the characters RFC 6750 §3 allows in `error_description` and that a
//!   header value may carry: visible ASCII without `"` and `\`.
//!
//! ```
//! use auth_broker_proto::text::{escaped, for_header};
//! assert_eq!(escaped("a\nb\u{1b}[2J").to_string(), r"a\nb\u{1b}[2J");
//! assert_eq!(for_header("RFC 9068 §2.1: \"at+jwt\"").to_string(), "RFC 9068 section 2.1: 'at+jwt'");
//! ```

use std::fmt::{self, Write};

/// How many characters of an outside value a message keeps. Enough to recognise a
/// `kid`, an issuer URL or a scheme name; far less than an attacker would send.
pub const MAX_CHARS: usize = 100;

/// How many characters of a whole message a header value keeps (after escaping).
pub const MAX_HEADER_CHARS: usize = 1024;

/// Marks where a value was cut.
pub const ELLIPSIS: char = '…';

/// Characters that are not control characters (`char::is_control`, Unicode Cc) but
/// still change what a reader sees: zero-width characters, the bidi embedding,
/// override and isolate controls ("Trojan Source", CVE-2021-42574), the line and
/// paragraph separators some log viewers break lines at, and the byte order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Writes `c` as a message shows it: itself, or a Rust-style escape (`\n`, `\r`,
/// `\t`, `\0`, `\\`, `\u{1b}`) for anything that could forge a line or hide text.
/// The backslash itself is escaped, so an escape in the output always means the
/// character, never a literal backslash sequence the sender wrote.
fn write_escaped(f: &mut impl Write, c: char) -> fmt::Result {
    match c {
        '\\' => f.write_str(r"\\"),
        '\n' => f.write_str(r"\n"),
        '\r' => f.write_str(r"\r"),
        '\t' => f.write_str(r"\t"),
        '\0' => f.write_str(r"\0"),
        c if c.is_control() || is_invisible_format(c) => write!(f, "\\u{{{:x}}}", u32::from(c)),
        c => f.write_char(c),
    }
}

fn write_bounded(f: &mut impl Write, text: &str, max_chars: usize) -> fmt::Result {
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            return f.write_char(ELLIPSIS);
        }
        write_escaped(f, c)?;
    }
    Ok(())
}

/// A borrowed outside value, displayed escaped and cut; see [`escaped`].
#[derive(Clone, Copy)]
pub struct Escaped<'a> {
    text: &'a str,
    max_chars: usize,
}

/// Displays `text` escaped (control and invisible formatting characters as `\n`,
/// `\u{1b}`, ...; the backslash as `\\`) and cut to [`MAX_CHARS`] characters with
/// [`ELLIPSIS`] after the cut. Allocates nothing: use it in `format!` and in
/// `tracing` fields (`kid = %escaped(kid)`).
pub fn escaped(text: &str) -> Escaped<'_> {
    Escaped {
        text,
        max_chars: MAX_CHARS,
    }
}

impl Escaped<'_> {
    /// Another bound than [`MAX_CHARS`] (counted in characters of the input).
    pub fn max_chars(self, max_chars: usize) -> Self {
        Self { max_chars, ..self }
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_bounded(f, self.text, self.max_chars)
    }
}

/// Quoted, like `str`'s `Debug`, but escaped and bounded the same way as `Display`.
impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        write_bounded(f, self.text, self.max_chars)?;
        f.write_char('"')
    }
}

/// An outside value kept by an error or a verdict: at most [`MAX_CHARS`] characters
/// of it are held (so an 11,000-character input costs a hundred), and it displays
/// like [`escaped`]. `Debug` shows the same escaped text, quoted.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Untrusted {
    kept: String,
    cut: bool,
}

impl Untrusted {
    /// Keeps the first [`MAX_CHARS`] characters of `text`.
    pub fn new(text: &str) -> Self {
        match text.char_indices().nth(MAX_CHARS) {
            Some((end, _)) => Self {
                kept: text[..end].to_owned(),
                cut: true,
            },
            None => Self {
                kept: text.to_owned(),
                cut: false,
            },
        }
    }

    /// The characters kept, unescaped: for comparisons, never for output.
    pub fn kept(&self) -> &str {
        &self.kept
    }

    /// Whether the value was longer than what is kept.
    pub fn was_cut(&self) -> bool {
        self.cut
    }
}

impl From<&str> for Untrusted {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.kept.chars() {
            write_escaped(f, c)?;
        }
        if self.cut {
            f.write_char(ELLIPSIS)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// A whole message displayed for an HTTP header; see [`for_header`].
#[derive(Clone, Copy, Debug)]
pub struct HeaderText<'a>(&'a str);

/// Displays `message` in the characters an RFC 6750 §3 `error_description` (and
/// any quoted-string of a header value, RFC 9110 §5.6.4) may hold: `%x20-21 /
/// %x23-5B / %x5D-7E`. The message is the one the JSON body carries, so only what
/// those characters cannot say changes: `§` reads `section `, [`ELLIPSIS`] `...`,
/// `"` becomes `'`, and anything else outside the set (a backslash, `%`, other
/// non-ASCII, control characters) is percent-encoded as UTF-8 (`%5C`, `%C3%A9`),
/// which is unambiguous and stays readable. Cut to [`MAX_HEADER_CHARS`] characters
/// of output.
pub fn for_header(message: &str) -> HeaderText<'_> {
    HeaderText(message)
}

impl fmt::Display for HeaderText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Bounded {
            inner: f,
            left: MAX_HEADER_CHARS,
        };
        // One character's encoding at a time, so a cut never splits a `%XX` sequence.
        let mut piece = String::with_capacity(12);
        for c in self.0.chars() {
            piece.clear();
            match c {
                '§' => piece.push_str("section "),
                ELLIPSIS => piece.push_str("..."),
                '"' => piece.push('\''),
                ' ' | '!' | '#'..='$' | '&'..='[' | ']'..='~' => piece.push(c),
                c => {
                    for b in c.encode_utf8(&mut [0; 4]).bytes() {
                        write!(piece, "%{b:02X}")?;
                    }
                }
            }
            if !out.put(&piece)? {
                return out.inner.write_str("...");
            }
        }
        Ok(())
    }
}

/// A writer that takes whole pieces while they fit in `left` characters.
struct Bounded<'f, 'a> {
    inner: &'f mut fmt::Formatter<'a>,
    left: usize,
}

impl Bounded<'_, '_> {
    /// Writes `piece` if it fits; `Ok(false)` once it does not.
    fn put(&mut self, piece: &str) -> Result<bool, fmt::Error> {
        // Every piece is ASCII: its length is its character count.
        if piece.len() > self.left {
            return Ok(false);
        }
        self.left -= piece.len();
        self.inner.write_str(piece)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The characters RFC 6750 §3 allows in `error_description`.
    fn rfc6750_char(b: u8) -> bool {
        matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)
    }

    #[test]
    fn line_breaks_and_terminal_controls_are_escaped() {
        let forged = "kid\n2026-01-01T00:00:00Z INFO admin logged in\r\u{1b}[2K\0\u{7f}\u{85}\t\\";
        assert_eq!(
            escaped(forged).to_string(),
            r"kid\n2026-01-01T00:00:00Z INFO admin logged in\r\u{1b}[2K\0\u{7f}\u{85}\t\\"
        );
        assert_eq!(
            Untrusted::new(forged).to_string(),
            escaped(forged).to_string()
        );
        // Bidi overrides and line separators, which do not count as control characters.
        assert_eq!(
            escaped("a\u{202e}b\u{2028}c\u{feff}").to_string(),
            r"a\u{202e}b\u{2028}c\u{feff}"
        );
        // Printable non-ASCII stays as it is in a body or a log line.
        assert_eq!(escaped("clé-ключ").to_string(), "clé-ключ");
        assert_eq!(format!("{:?}", escaped("a\"b\n")), r#""a"b\n""#);
        assert_eq!(format!("{:?}", Untrusted::new("a\n")), r#""a\n""#);
    }

    #[test]
    fn long_values_are_cut_with_a_marker() {
        let kid = "k".repeat(11_000);
        let shown = escaped(&kid).to_string();
        assert_eq!(shown.chars().count(), MAX_CHARS + 1);
        assert!(shown.ends_with(ELLIPSIS));
        let kept = Untrusted::new(&kid);
        assert_eq!(kept.kept().len(), MAX_CHARS);
        assert!(kept.was_cut());
        assert_eq!(kept.to_string(), shown);
        // Exactly at the bound: nothing cut, no marker.
        let exact = "é".repeat(MAX_CHARS);
        assert_eq!(escaped(&exact).to_string(), exact);
        assert!(!Untrusted::new(&exact).was_cut());
        assert_eq!(escaped("abcdef").max_chars(3).to_string(), "abc…");
    }

    #[test]
    fn header_text_keeps_to_the_rfc_6750_characters() {
        assert_eq!(
            for_header("typ \"JWT\", not \"at+jwt\" (RFC 9068 §2.1)").to_string(),
            "typ 'JWT', not 'at+jwt' (RFC 9068 section 2.1)"
        );
        assert_eq!(
            for_header("clé\\ 100%…").to_string(),
            "cl%C3%A9%5C 100%25..."
        );
        assert_eq!(for_header("a\r\nb").to_string(), "a%0D%0Ab");
        // An escaped value inside a message stays one header line.
        let message = format!("key '{}' unknown", escaped(&"\n".repeat(11_000)));
        let h = for_header(&message).to_string();
        assert_eq!(h, format!("key '{}...' unknown", "%5Cn".repeat(MAX_CHARS)));
        // A percent-encoded character is never split by the cut.
        let h = for_header(&"é".repeat(1_000)).to_string();
        assert!(h.ends_with("%C3%A9..."), "{h}");
    }

    proptest! {
        #[test]
        fn escaped_text_has_no_line_breaks_or_controls(s in "\\PC*|[\\x00-\\x20\\\\\u{202e}\u{2028}é]*") {
            let shown = escaped(&s).to_string();
            prop_assert!(!shown.chars().any(|c| c.is_control() || is_invisible_format(c)), "{shown:?}");
            prop_assert!(shown.chars().count() <= MAX_CHARS * 10 + 1);
            prop_assert_eq!(Untrusted::new(&s).to_string(), shown);
        }

        #[test]
        fn header_text_is_always_a_valid_error_description(s in any::<String>()) {
            let h = for_header(&s).to_string();
            prop_assert!(h.bytes().all(rfc6750_char), "{h:?}");
            prop_assert!(h.len() <= MAX_HEADER_CHARS + 3);
            prop_assert!(http_header_value_ok(&h));
        }
    }

    /// What `http::HeaderValue::from_str` accepts (visible ASCII, space, tab),
    /// without the dependency.
    fn http_header_value_ok(s: &str) -> bool {
        s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    }
}
