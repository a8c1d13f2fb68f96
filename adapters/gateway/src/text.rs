//! Text utilities every adapter needs: length units, UTF-16 offsets, splitting long messages, nick
//! prefixes. (HTML rendering is in [`crate::html`].)

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::model::{Author, FormattedText, Span};

/// How a messenger measures text length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// UTF-16 code units (Telegram entity offsets and limits, JavaScript string length).
    Utf16,
    /// Unicode scalar values.
    Chars,
    /// UTF-8 bytes.
    Bytes,
}

impl Unit {
    /// The length of `s` in this unit.
    pub fn len(self, s: &str) -> usize {
        match self {
            Self::Utf16 => utf16_len(s),
            Self::Chars => s.chars().count(),
            Self::Bytes => s.len(),
        }
    }

    fn of_char(self, c: char) -> usize {
        match self {
            Self::Utf16 => c.len_utf16(),
            Self::Chars => 1,
            Self::Bytes => c.len_utf8(),
        }
    }
}

/// The length of `s` in UTF-16 code units.
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// The UTF-16 offset of byte offset `byte`; `None` if it is past the end or inside a char.
pub fn byte_to_utf16(s: &str, byte: usize) -> Option<usize> {
    s.get(..byte).map(utf16_len)
}

/// The byte offset of UTF-16 offset `units`; `None` if it is past the end or between the two
/// halves of a surrogate pair.
pub fn utf16_to_byte(s: &str, units: usize) -> Option<usize> {
    let mut seen = 0;
    for (byte, c) in s.char_indices() {
        if seen == units {
            return Some(byte);
        }
        if seen > units {
            return None;
        }
        seen += c.len_utf16();
    }
    (seen == units).then_some(s.len())
}

/// The byte range of a UTF-16 `offset`/`length` pair (a Telegram entity); `None` if either end
/// is out of range or splits a surrogate pair.
pub fn utf16_range_to_bytes(s: &str, offset: usize, length: usize) -> Option<Range<usize>> {
    let start = utf16_to_byte(s, offset)?;
    let end = utf16_to_byte(s.get(start..)?, length)? + start;
    Some(start..end)
}

/// The UTF-16 `(offset, length)` of a byte range; `None` if it is out of range or not on char
/// boundaries.
pub fn bytes_range_to_utf16(s: &str, range: Range<usize>) -> Option<(usize, usize)> {
    let offset = byte_to_utf16(s, range.start)?;
    let length = utf16_len(s.get(range)?);
    Some((offset, length))
}

/// Splits `text` into parts of at most `max_units` each, for messengers that cap message length.
///
/// Parts concatenate back to the original text exactly: cuts go after a blank line, else after a
/// line break, else at whitespace — the first of these found in the second half of the room
/// available, so that parts stay reasonably full — and only where there is none, mid-word. Cuts
/// are always on char boundaries, so no char and no surrogate pair is ever split. A span crossing a
/// cut continues in the next part; invalid spans are dropped.
///
/// Every part holds at least one char, so a part exceeds `max_units` only when a single char does
/// (`max_units` below 4 bytes or 2 UTF-16 units). No part is blank (whitespace only) unless the
/// text is, or a whitespace run in it is about as long as `max_units`; adapters whose remote
/// rejects blank messages must skip those. An empty text gives one empty part.
pub fn split_text(text: &FormattedText, max_units: usize, unit: Unit) -> Vec<FormattedText> {
    let spans: Vec<&Span> = text.valid_spans().collect();
    part_ranges(&text.text, max_units, unit)
        .into_iter()
        .map(|range| FormattedText {
            text: text.text[range.clone()].to_owned(),
            spans: spans
                .iter()
                .filter_map(|span| {
                    let start = span.start.max(range.start);
                    let end = span.end.min(range.end);
                    (start < end).then(|| Span {
                        start: start - range.start,
                        end: end - range.start,
                        style: span.style.clone(),
                    })
                })
                .collect(),
        })
        .collect()
}

fn part_ranges(s: &str, max_units: usize, unit: Unit) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &s[pos..];
        let room = match room_end(rest, max_units, unit) {
            Some(room) if room < rest.len() => room,
            // All of it fits, or it is a single char too wide to fit anywhere.
            _ => {
                parts.push(pos..s.len());
                return parts;
            }
        };
        let cut = best_cut(rest, room);
        parts.push(pos..pos + cut);
        pos += cut;
    }
}

/// The byte length of the longest prefix of `rest` that fits in `max_units` (at least one char),
/// or `None` when all of `rest` fits.
fn room_end(rest: &str, max_units: usize, unit: Unit) -> Option<usize> {
    let mut used = 0;
    for (byte, c) in rest.char_indices() {
        used += unit.of_char(c);
        if used > max_units {
            return Some(if byte == 0 { c.len_utf8() } else { byte });
        }
    }
    None
}

/// Where to cut `rest`, given that its first `room` bytes fit (and not all of it does).
fn best_cut(rest: &str, room: usize) -> usize {
    let window = &rest[..room];
    // A cut at or before `lead` leaves a first part of only whitespace, one at or after `tail` a
    // rest of only whitespace; remotes reject blank messages, so such cuts are the last resort.
    let lead = rest.len() - rest.trim_start().len();
    let tail = rest.trim_end().len();
    let paragraph = window.rfind("\n\n").map(|i| i + 2);
    let line = window.rfind('\n').map(|i| i + 1);
    let at_room_end = rest[room..]
        .starts_with(char::is_whitespace)
        .then_some(room);
    let after_space = window
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map(|(i, c)| i + c.len_utf8());
    let candidates = [paragraph, line, at_room_end, after_space];
    let usable = || {
        candidates
            .into_iter()
            .flatten()
            .filter(|&cut| lead < cut && cut < tail)
    };
    if let Some(cut) = usable()
        .find(|&cut| cut >= room / 2)
        .or_else(|| usable().max())
    {
        return cut;
    }
    // No break anywhere: cut mid-word, keeping something visible on both sides where possible.
    if room < tail {
        return room;
    }
    rest[..tail]
        .char_indices()
        .next_back()
        .map(|(i, _)| i)
        .filter(|&i| i > lead)
        .unwrap_or(room)
}

/// Renders a nick prefix such as `"{name}: "`: `{name}` and `{id}` become the author's name and
/// id, `{{` and `}}` literal braces; anything else is kept as written. Control characters in the
/// substituted values (newlines in a display name …) become spaces, so that a name cannot forge
/// extra lines of the message.
pub fn apply_nick_format(format: &str, author: &Author) -> String {
    let mut out = String::with_capacity(format.len() + author.name.len());
    let mut rest = format;
    while let Some(c) = rest.chars().next() {
        let (value, used) = if rest.starts_with("{name}") {
            (Some(author.name.as_str()), "{name}".len())
        } else if rest.starts_with("{id}") {
            (Some(author.id.as_str()), "{id}".len())
        } else if rest.starts_with("{{") || rest.starts_with("}}") {
            out.push(c);
            (None, 2)
        } else {
            out.push(c);
            (None, c.len_utf8())
        };
        if let Some(value) = value {
            out.extend(value.chars().map(|c| if c.is_control() { ' ' } else { c }));
        }
        rest = &rest[used..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Style;
    use proptest::prelude::*;

    fn texts(parts: &[FormattedText]) -> Vec<&str> {
        parts.iter().map(|p| p.text.as_str()).collect()
    }

    #[test]
    fn utf16_len_counts_surrogate_pairs_twice() {
        assert_eq!(utf16_len(""), 0);
        assert_eq!(utf16_len("abc"), 3);
        assert_eq!(utf16_len("é"), 1);
        assert_eq!(utf16_len("😀"), 2);
        assert_eq!(utf16_len("a😀é"), 4);
    }

    #[test]
    fn converts_offsets_between_bytes_and_utf16() {
        let s = "a😀é";
        // bytes: a=0, 😀=1..5, é=5..7; UTF-16: a=0, 😀=1..3, é=3..4
        assert_eq!(byte_to_utf16(s, 0), Some(0));
        assert_eq!(byte_to_utf16(s, 1), Some(1));
        assert_eq!(byte_to_utf16(s, 5), Some(3));
        assert_eq!(byte_to_utf16(s, 7), Some(4));
        assert_eq!(byte_to_utf16(s, 2), None, "inside the emoji");
        assert_eq!(byte_to_utf16(s, 8), None, "past the end");

        assert_eq!(utf16_to_byte(s, 0), Some(0));
        assert_eq!(utf16_to_byte(s, 1), Some(1));
        assert_eq!(utf16_to_byte(s, 2), None, "between surrogates");
        assert_eq!(utf16_to_byte(s, 3), Some(5));
        assert_eq!(utf16_to_byte(s, 4), Some(7));
        assert_eq!(utf16_to_byte(s, 5), None, "past the end");
        assert_eq!(utf16_to_byte("", 0), Some(0));
    }

    #[test]
    fn converts_telegram_entity_ranges() {
        let s = "hi 😀 bold";
        assert_eq!(utf16_range_to_bytes(s, 6, 4), Some(8..12));
        assert_eq!(&s[8..12], "bold");
        assert_eq!(bytes_range_to_utf16(s, 8..12), Some((6, 4)));
        assert_eq!(utf16_range_to_bytes(s, 3, 2), Some(3..7));
        assert_eq!(utf16_range_to_bytes(s, 3, 1), None, "half an emoji");
        assert_eq!(utf16_range_to_bytes(s, 6, 9), None, "too long");
        assert_eq!(bytes_range_to_utf16(s, 4..12), None, "mid-char start");
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = bytes_range_to_utf16(s, 8..3);
        assert_eq!(reversed, None);
    }

    #[test]
    fn short_text_is_one_part() {
        let t = FormattedText::new("hello", vec![Span::new(0, 5, Style::Bold)]).expect("valid");
        assert_eq!(split_text(&t, 5, Unit::Chars), vec![t.clone()]);
        assert_eq!(split_text(&t, 100, Unit::Utf16), vec![t]);
    }

    #[test]
    fn empty_text_is_one_empty_part() {
        let parts = split_text(&FormattedText::plain(""), 10, Unit::Chars);
        assert_eq!(parts, vec![FormattedText::plain("")]);
    }

    #[test]
    fn prefers_paragraph_breaks() {
        let t = FormattedText::plain("first para\nline two\n\nsecond para here");
        let parts = split_text(&t, 24, Unit::Chars);
        assert_eq!(
            texts(&parts),
            ["first para\nline two\n\n", "second para here"]
        );
    }

    #[test]
    fn falls_back_to_line_breaks() {
        let t = FormattedText::plain("line one\nline two\nline three");
        let parts = split_text(&t, 20, Unit::Chars);
        assert_eq!(texts(&parts), ["line one\nline two\n", "line three"]);
    }

    #[test]
    fn falls_back_to_word_breaks() {
        let t = FormattedText::plain("one two three four five");
        let parts = split_text(&t, 9, Unit::Chars);
        assert_eq!(texts(&parts), ["one two ", "three ", "four five"]);
    }

    #[test]
    fn cuts_at_the_room_end_when_whitespace_follows_it() {
        let t = FormattedText::plain("abcd ef");
        assert_eq!(texts(&split_text(&t, 4, Unit::Chars)), ["abcd", " ef"]);
    }

    #[test]
    fn never_leaves_trailing_whitespace_as_a_part_of_its_own() {
        // "abcd" would fit exactly, but "\n" alone is a blank message remotes reject.
        let t = FormattedText::plain("ab cd\n");
        assert_eq!(texts(&split_text(&t, 5, Unit::Chars)), ["ab ", "cd\n"]);
        let t = FormattedText::plain("abcd\n");
        assert_eq!(texts(&split_text(&t, 4, Unit::Chars)), ["abc", "d\n"]);
    }

    #[test]
    fn never_leaves_leading_whitespace_as_a_part_of_its_own() {
        let t = FormattedText::plain("abcd efghi");
        assert_eq!(
            texts(&split_text(&t, 4, Unit::Chars)),
            ["abcd", " efg", "hi"]
        );
    }

    #[test]
    fn ignores_a_break_that_would_leave_a_tiny_part() {
        // The only line break is in the first half of the room; a word break later wins.
        let t = FormattedText::plain("ab\ncdefgh ijklmnop qrst");
        let parts = split_text(&t, 20, Unit::Chars);
        assert_eq!(texts(&parts), ["ab\ncdefgh ijklmnop ", "qrst"]);
    }

    #[test]
    fn uses_an_early_break_rather_than_cutting_a_word() {
        let t = FormattedText::plain("ab cdefghijklmnopqrstuvwxyz");
        let parts = split_text(&t, 10, Unit::Chars);
        assert_eq!(texts(&parts), ["ab ", "cdefghijkl", "mnopqrstuv", "wxyz"]);
    }

    #[test]
    fn cuts_mid_word_when_there_is_no_whitespace() {
        let t = FormattedText::plain("abcdefghij");
        let parts = split_text(&t, 4, Unit::Chars);
        assert_eq!(texts(&parts), ["abcd", "efgh", "ij"]);
    }

    #[test]
    fn never_splits_a_surrogate_pair() {
        let t = FormattedText::plain("a😀😀b");
        // UTF-16 lengths: a=1, 😀=2, 😀=2, b=1
        let parts = split_text(&t, 2, Unit::Utf16);
        assert_eq!(texts(&parts), ["a", "😀", "😀", "b"]);
        let parts = split_text(&t, 3, Unit::Utf16);
        assert_eq!(texts(&parts), ["a😀", "😀b"]);
        // Measured in chars the same text fits far more per part.
        let parts = split_text(&t, 3, Unit::Chars);
        assert_eq!(texts(&parts), ["a😀😀", "b"]);
    }

    #[test]
    fn counts_bytes_without_splitting_chars() {
        let t = FormattedText::plain("ééé");
        let parts = split_text(&t, 3, Unit::Bytes);
        assert_eq!(texts(&parts), ["é", "é", "é"]);
    }

    #[test]
    fn a_char_wider_than_the_limit_still_makes_progress() {
        let t = FormattedText::plain("😀😀");
        let parts = split_text(&t, 1, Unit::Utf16);
        assert_eq!(texts(&parts), ["😀", "😀"]);
        let parts = split_text(&t, 0, Unit::Chars);
        assert_eq!(texts(&parts), ["😀", "😀"]);
    }

    #[test]
    fn a_span_crossing_a_cut_continues_in_the_next_part() {
        let t = FormattedText::new(
            "plain bold text here",
            vec![
                Span::new(6, 15, Style::Bold),
                Span::new(0, 5, Style::Italic),
                Span::new(16, 20, Style::Code),
            ],
        )
        .expect("valid");
        let parts = split_text(&t, 11, Unit::Chars);
        assert_eq!(texts(&parts), ["plain bold ", "text here"]);
        assert_eq!(
            parts[0].spans,
            vec![
                Span::new(6, 11, Style::Bold),
                Span::new(0, 5, Style::Italic)
            ]
        );
        assert_eq!(
            parts[1].spans,
            vec![Span::new(0, 4, Style::Bold), Span::new(5, 9, Style::Code)]
        );
    }

    #[test]
    fn drops_invalid_spans_instead_of_panicking() {
        let t = FormattedText {
            text: "é and more text".into(),
            spans: vec![
                Span::new(1, 3, Style::Bold),
                Span::new(0, 99, Style::Bold),
                Span::new(0, 2, Style::Italic),
            ],
        };
        let parts = split_text(&t, 6, Unit::Chars);
        assert_eq!(parts[0].spans, vec![Span::new(0, 2, Style::Italic)]);
        assert!(parts[1..].iter().all(|p| p.spans.is_empty()));
    }

    #[test]
    fn nick_format_substitutes_name_and_id() {
        let ann = Author {
            id: "42".into(),
            name: "Ann".into(),
        };
        assert_eq!(apply_nick_format("{name}: ", &ann), "Ann: ");
        assert_eq!(apply_nick_format("[{name}|{id}] ", &ann), "[Ann|42] ");
        assert_eq!(apply_nick_format("<{name}> {name}", &ann), "<Ann> Ann");
        assert_eq!(apply_nick_format("", &ann), "");
    }

    #[test]
    fn nick_format_keeps_unknown_placeholders_and_unescapes_braces() {
        let ann = Author {
            id: "42".into(),
            name: "Ann".into(),
        };
        assert_eq!(apply_nick_format("{nick} {name", &ann), "{nick} {name");
        assert_eq!(apply_nick_format("{{name}} {name}", &ann), "{name} Ann");
        assert_eq!(apply_nick_format("é{id}😀", &ann), "é42😀");
    }

    #[test]
    fn nick_format_does_not_expand_placeholders_inside_names() {
        let tricky = Author {
            id: "7".into(),
            name: "{id}\nFAKE: hi".into(),
        };
        assert_eq!(apply_nick_format("{name}: ", &tricky), "{id} FAKE: hi: ");
    }

    /// A string mixing ASCII, whitespace runs, 2-byte, 3-byte and non-BMP chars, plus valid spans.
    fn formatted_text() -> impl Strategy<Value = FormattedText> {
        "[a-c \n\té€😀𝄞]{0,120}".prop_flat_map(|text| {
            let bounds: Vec<usize> = text
                .char_indices()
                .map(|(i, _)| i)
                .chain([text.len()])
                .collect();
            let n = bounds.len();
            let raw_span = (0..n, 0..n, 0..3usize);
            proptest::collection::vec(raw_span, 0..6).prop_map(move |raw| {
                let spans = raw
                    .into_iter()
                    .filter(|(a, b, _)| a != b)
                    .map(|(a, b, style)| {
                        let style = [Style::Bold, Style::Code, Style::Quote][style].clone();
                        Span::new(bounds[a.min(b)], bounds[a.max(b)], style)
                    })
                    .collect();
                FormattedText {
                    text: text.clone(),
                    spans,
                }
            })
        })
    }

    fn unit() -> impl Strategy<Value = Unit> {
        prop_oneof![Just(Unit::Utf16), Just(Unit::Chars), Just(Unit::Bytes)]
    }

    proptest! {
        #[test]
        fn split_parts_rebuild_the_text_fit_and_keep_spans(
            t in formatted_text(),
            max in 4usize..40,
            unit in unit(),
        ) {
            prop_assert!(t.validate().is_ok());
            let parts = split_text(&t, max, unit);
            prop_assert!(!parts.is_empty());

            let joined: String = parts.iter().map(|p| p.text.as_str()).collect();
            prop_assert_eq!(&joined, &t.text);

            let mut base = 0;
            let mut pieces = 0;
            for part in &parts {
                prop_assert!(unit.len(&part.text) <= max, "part {:?} too long", part.text);
                prop_assert!(!part.text.is_empty() || t.text.is_empty());
                prop_assert!(part.validate().is_ok(), "{:?}", part);
                // Each original span appears, cut to this part, in this part.
                let range = base..base + part.text.len();
                for span in &t.spans {
                    let (s, e) = (span.start.max(range.start), span.end.min(range.end));
                    if s < e {
                        let want = Span::new(s - base, e - base, span.style.clone());
                        prop_assert!(part.spans.contains(&want), "missing {:?} in {:?}", want, part);
                        pieces += 1;
                    }
                }
                base = range.end;
            }
            let total: usize = parts.iter().map(|p| p.spans.len()).sum();
            prop_assert_eq!(total, pieces);
        }

        #[test]
        fn split_parts_are_not_blank_when_whitespace_runs_are_short(
            words in proptest::collection::vec(("[a-cé€😀𝄞]{1,12}", "[ \n\t]{1,2}"), 1..30),
            max in 8usize..40,
            unit in unit(),
        ) {
            // Whitespace runs of at most 2 units, well under a quarter of `max`.
            let text: String = words.iter().flat_map(|(w, s)| [w.as_str(), s.as_str()]).collect();
            for part in split_text(&FormattedText::plain(text), max, unit) {
                prop_assert!(!part.text.trim().is_empty(), "blank part {:?}", part.text);
            }
        }

        #[test]
        fn utf16_offsets_round_trip(s in "[a😀é€\n]{0,40}") {
            for (byte, _) in s.char_indices().chain([(s.len(), ' ')]) {
                let units = byte_to_utf16(&s, byte);
                prop_assert!(units.is_some());
                prop_assert_eq!(units.and_then(|u| utf16_to_byte(&s, u)), Some(byte));
            }
            prop_assert_eq!(byte_to_utf16(&s, s.len()), Some(utf16_len(&s)));
            prop_assert_eq!(utf16_len(&s), s.encode_utf16().count());
        }
    }
}
