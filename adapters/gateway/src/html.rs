//! Rendering [`FormattedText`] as the HTML subset Telegram's `parse_mode=HTML` accepts.

use crate::model::{FormattedText, Span, Style};

/// Escapes the characters Telegram's HTML mode requires: `&`, `<`, `>` and `"` (the latter for
/// attribute values). Everything else, including `'`, passes through.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders `text` as well-formed Telegram HTML.
///
/// Overlapping spans are closed and reopened so that tags always nest. Where Telegram forbids a
/// nesting the inner style is dropped and its text kept: nothing inside `code`/`pre`, no link in a
/// link, no quote in a quote. A mention becomes a `tg://user` link when its user is a numeric
/// Telegram id and plain text otherwise. Invalid spans are ignored.
pub fn to_html(text: &FormattedText) -> String {
    let s = text.text.as_str();
    let spans: Vec<&Span> = text.valid_spans().collect();
    let mut points: Vec<usize> = spans
        .iter()
        .flat_map(|span| [span.start, span.end])
        .chain([0, s.len()])
        .collect();
    points.sort_unstable();
    points.dedup();

    let mut out = String::with_capacity(s.len() + 16 * spans.len());
    let mut open: Vec<usize> = Vec::new();
    for segment in points.windows(2) {
        let (from, to) = (segment[0], segment[1]);
        let wanted = tags_for(&spans, from, to);
        let kept = open.iter().zip(&wanted).take_while(|(a, b)| a == b).count();
        for &i in open[kept..].iter().rev() {
            out.push_str(closing_tag(&spans[i].style));
        }
        for &i in &wanted[kept..] {
            push_opening_tag(&mut out, &spans[i].style);
        }
        open = wanted;
        out.push_str(&escape_html(&s[from..to]));
    }
    for &i in open.iter().rev() {
        out.push_str(closing_tag(&spans[i].style));
    }
    out
}

/// The spans to have open over `from..to`, outermost first: those that started earlier (then
/// those that end later) enclose the others, minus the nestings Telegram forbids.
fn tags_for(spans: &[&Span], from: usize, to: usize) -> Vec<usize> {
    let mut active: Vec<usize> = (0..spans.len())
        .filter(|&i| spans[i].start <= from && to <= spans[i].end && renders_a_tag(&spans[i].style))
        .collect();
    active.sort_by_key(|&i| (spans[i].start, std::cmp::Reverse(spans[i].end), i));
    let (mut in_code, mut in_link, mut in_quote) = (false, false, false);
    active.retain(|&i| {
        if in_code {
            return false;
        }
        let inside = match spans[i].style {
            Style::Code | Style::Pre { .. } => &mut in_code,
            Style::Link { .. } | Style::Mention { .. } => &mut in_link,
            Style::Quote => &mut in_quote,
            _ => return true,
        };
        !std::mem::replace(inside, true)
    });
    active
}

fn telegram_user_id(user: &str) -> Option<&str> {
    (!user.is_empty() && user.bytes().all(|b| b.is_ascii_digit())).then_some(user)
}

fn renders_a_tag(style: &Style) -> bool {
    match style {
        Style::Link { url } => !url.is_empty(),
        Style::Mention { user } => telegram_user_id(user).is_some(),
        _ => true,
    }
}

fn push_opening_tag(out: &mut String, style: &Style) {
    match style {
        Style::Bold => out.push_str("<b>"),
        Style::Italic => out.push_str("<i>"),
        Style::Underline => out.push_str("<u>"),
        Style::Strikethrough => out.push_str("<s>"),
        Style::Code => out.push_str("<code>"),
        Style::Pre { language } => match language.as_deref().filter(|l| !l.is_empty()) {
            Some(language) => {
                out.push_str("<pre><code class=\"language-");
                out.push_str(&escape_html(language));
                out.push_str("\">");
            }
            None => out.push_str("<pre>"),
        },
        Style::Link { url } => {
            out.push_str("<a href=\"");
            out.push_str(&escape_html(url));
            out.push_str("\">");
        }
        Style::Mention { user } => {
            out.push_str("<a href=\"tg://user?id=");
            out.push_str(telegram_user_id(user).unwrap_or_default());
            out.push_str("\">");
        }
        Style::Spoiler => out.push_str("<tg-spoiler>"),
        Style::Quote => out.push_str("<blockquote>"),
    }
}

fn closing_tag(style: &Style) -> &'static str {
    match style {
        Style::Bold => "</b>",
        Style::Italic => "</i>",
        Style::Underline => "</u>",
        Style::Strikethrough => "</s>",
        Style::Code => "</code>",
        Style::Pre { language } if language.as_deref().is_some_and(|l| !l.is_empty()) => {
            "</code></pre>"
        }
        Style::Pre { .. } => "</pre>",
        Style::Link { .. } | Style::Mention { .. } => "</a>",
        Style::Spoiler => "</tg-spoiler>",
        Style::Quote => "</blockquote>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn html(text: &str, spans: Vec<Span>) -> String {
        to_html(&FormattedText::new(text, spans).expect("valid test text"))
    }

    #[test]
    fn escapes_only_what_telegram_requires() {
        assert_eq!(
            escape_html(r#"a < b && c > "d" 'e' é"#),
            "a &lt; b &amp;&amp; c &gt; &quot;d&quot; 'e' é"
        );
        assert_eq!(escape_html(""), "");
    }

    #[test]
    fn plain_text_is_escaped() {
        assert_eq!(
            to_html(&FormattedText::plain("1 < 2 & 3")),
            "1 &lt; 2 &amp; 3"
        );
        assert_eq!(to_html(&FormattedText::plain("")), "");
    }

    #[test]
    fn renders_every_style() {
        let cases = [
            (Style::Bold, "<b>x</b>"),
            (Style::Italic, "<i>x</i>"),
            (Style::Underline, "<u>x</u>"),
            (Style::Strikethrough, "<s>x</s>"),
            (Style::Code, "<code>x</code>"),
            (Style::Pre { language: None }, "<pre>x</pre>"),
            (
                Style::Pre {
                    language: Some("rust".into()),
                },
                "<pre><code class=\"language-rust\">x</code></pre>",
            ),
            (
                Style::Link {
                    url: "https://e.org/?a=1&b=\"2\"".into(),
                },
                "<a href=\"https://e.org/?a=1&amp;b=&quot;2&quot;\">x</a>",
            ),
            (
                Style::Mention {
                    user: "123456".into(),
                },
                "<a href=\"tg://user?id=123456\">x</a>",
            ),
            (Style::Spoiler, "<tg-spoiler>x</tg-spoiler>"),
            (Style::Quote, "<blockquote>x</blockquote>"),
        ];
        for (style, want) in cases {
            assert_eq!(
                html("x", vec![Span::new(0, 1, style.clone())]),
                want,
                "{style:?}"
            );
        }
    }

    #[test]
    fn mentions_of_non_telegram_users_and_empty_links_are_plain_text() {
        let spans = vec![
            Span::new(
                0,
                3,
                Style::Mention {
                    user: "a1b2-uuid".into(),
                },
            ),
            Span::new(4, 5, Style::Link { url: String::new() }),
        ];
        assert_eq!(html("Ann x", spans), "Ann x");
    }

    #[test]
    fn nested_spans_nest() {
        let spans = vec![Span::new(0, 9, Style::Bold), Span::new(5, 9, Style::Italic)];
        assert_eq!(html("bold both", spans), "<b>bold <i>both</i></b>");
        // Listed inner-first; the longer span still encloses the shorter one.
        let spans = vec![Span::new(0, 4, Style::Italic), Span::new(0, 9, Style::Bold)];
        assert_eq!(html("both bold", spans), "<b><i>both</i> bold</b>");
    }

    #[test]
    fn overlapping_spans_are_closed_and_reopened() {
        let spans = vec![Span::new(0, 3, Style::Bold), Span::new(2, 5, Style::Italic)];
        assert_eq!(html("abcde", spans), "<b>ab<i>c</i></b><i>de</i>");
    }

    #[test]
    fn code_contains_no_other_tags() {
        let spans = vec![Span::new(0, 8, Style::Code), Span::new(2, 4, Style::Bold)];
        assert_eq!(html("a <b> c!", spans), "<code>a &lt;b&gt; c!</code>");
        // Formatting around code is fine.
        let spans = vec![Span::new(0, 6, Style::Bold), Span::new(2, 6, Style::Code)];
        assert_eq!(html("x code", spans), "<b>x <code>code</code></b>");
    }

    #[test]
    fn links_and_quotes_do_not_nest_in_themselves() {
        let outer = Style::Link {
            url: "https://a".into(),
        };
        let inner = Style::Link {
            url: "https://b".into(),
        };
        let spans = vec![Span::new(0, 3, outer), Span::new(1, 2, inner)];
        assert_eq!(html("abc", spans), "<a href=\"https://a\">abc</a>");
        let spans = vec![Span::new(0, 3, Style::Quote), Span::new(0, 1, Style::Quote)];
        assert_eq!(html("abc", spans), "<blockquote>abc</blockquote>");
    }

    #[test]
    fn ignores_invalid_spans_instead_of_panicking() {
        let t = FormattedText {
            text: "é!".into(),
            spans: vec![
                Span::new(1, 2, Style::Bold),
                Span::new(0, 40, Style::Italic),
                Span::new(2, 3, Style::Code),
            ],
        };
        assert_eq!(to_html(&t), "é<code>!</code>");
    }

    /// Checks that `html` is well-formed (tags balanced and properly nested) and returns its text
    /// with tags removed and entities decoded.
    fn parse(html: &str) -> Result<String, String> {
        let mut stack: Vec<&str> = Vec::new();
        let mut text = String::new();
        let mut rest = html;
        while let Some(lt) = rest.find('<') {
            text.push_str(&rest[..lt]);
            let gt = rest[lt..].find('>').ok_or("unterminated tag")? + lt;
            let tag = &rest[lt + 1..gt];
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else {
                stack.push(tag.split(' ').next().unwrap_or_default());
            }
            rest = &rest[gt + 1..];
        }
        text.push_str(rest);
        if !stack.is_empty() {
            return Err(format!("unclosed {stack:?}"));
        }
        Ok(text
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&"))
    }

    fn style() -> impl Strategy<Value = Style> {
        prop_oneof![
            Just(Style::Bold),
            Just(Style::Italic),
            Just(Style::Code),
            Just(Style::Pre {
                language: Some("r&s".into())
            }),
            Just(Style::Link {
                url: "https://x/?a=\"1\"".into()
            }),
            Just(Style::Mention { user: "42".into() }),
            Just(Style::Spoiler),
            Just(Style::Quote),
        ]
    }

    proptest! {
        #[test]
        fn html_is_well_formed_and_keeps_the_text(
            text in "[a<>&\"é😀 ]{0,40}",
            raw in proptest::collection::vec((0usize..64, 0usize..64, style()), 0..8),
        ) {
            let bounds: Vec<usize> =
                text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
            let spans: Vec<Span> = raw
                .into_iter()
                .map(|(a, b, style)| {
                    let (a, b) = (bounds[a % bounds.len()], bounds[b % bounds.len()]);
                    Span::new(a.min(b), a.max(b), style)
                })
                .collect();
            // Empty spans are invalid and must simply be skipped.
            let t = FormattedText { text: text.clone(), spans };
            let out = to_html(&t);
            prop_assert_eq!(parse(&out), Ok(text), "{}", out);
        }
    }
}
