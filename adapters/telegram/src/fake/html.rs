//! The fake server's reading of `parse_mode=HTML`: Telegram's tag set, strict nesting, text and
//! entities (UTF-16 offsets) out, Telegram-worded errors for anything malformed.

use serde_json::{json, Value};

struct Open {
    name: String,
    start: usize,
    entity: Option<Value>,
    byte: usize,
}

/// Parses Telegram HTML into plain text and entities, or the error description Telegram gives.
pub fn parse(html: &str) -> Result<(String, Vec<Value>), String> {
    let mut text = String::new();
    let mut units = 0usize;
    let mut stack: Vec<Open> = Vec::new();
    let mut entities = Vec::new();
    let mut i = 0;
    let bytes = html.as_bytes();
    while i < html.len() {
        match bytes[i] {
            b'<' => {
                let Some(len) = html[i..].find('>') else {
                    return Err(format!(
                        "Bad Request: can't parse entities: Unclosed start tag at byte offset {i}"
                    ));
                };
                let tag = &html[i + 1..i + len];
                if let Some(name) = tag.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    let Some(open) = stack.pop() else {
                        return Err(format!(
                            "Bad Request: can't parse entities: Unexpected end tag at byte offset {i}"
                        ));
                    };
                    if open.name != name {
                        return Err(format!(
                            "Bad Request: can't parse entities: Unmatched end tag at byte offset {i}, expected \"</{}>\", found \"</{name}>\"",
                            open.name
                        ));
                    }
                    if let Some(mut entity) = open.entity {
                        if units > open.start {
                            entity["offset"] = json!(open.start);
                            entity["length"] = json!(units - open.start);
                            entities.push(entity);
                        }
                    }
                } else {
                    let (name, attrs) = split_tag(tag);
                    let entity = entity_for(&name, &attrs, stack.last_mut()).map_err(|e| {
                        format!("Bad Request: can't parse entities: {e} at byte offset {i}")
                    })?;
                    stack.push(Open {
                        name,
                        start: units,
                        entity,
                        byte: i,
                    });
                }
                i += len + 1;
            }
            b'&' => {
                let rest = &html[i..];
                let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
                    let name = &rest[1..end];
                    let c = match name {
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "amp" => Some('&'),
                        "quot" => Some('"'),
                        _ => name
                            .strip_prefix("#x")
                            .or_else(|| name.strip_prefix("#X"))
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                            .and_then(char::from_u32),
                    }?;
                    Some((c, end + 1))
                });
                let (c, used) = decoded.unwrap_or(('&', 1));
                text.push(c);
                units += c.len_utf16();
                i += used;
            }
            _ => {
                let c = html[i..].chars().next().unwrap_or('\u{FFFD}');
                text.push(c);
                units += c.len_utf16();
                i += c.len_utf8().max(1);
            }
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!(
            "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"{}\" at byte offset {}",
            open.name, open.byte
        ));
    }
    entities.sort_by_key(|e| {
        (
            e["offset"].as_u64(),
            std::cmp::Reverse(e["length"].as_u64()),
        )
    });
    Ok((text, entities))
}

fn split_tag(tag: &str) -> (String, Vec<(String, String)>) {
    let tag = tag.trim();
    let (name, mut rest) = match tag.find(char::is_whitespace) {
        Some(at) => (&tag[..at], tag[at..].trim()),
        None => (tag, ""),
    };
    let mut attrs = Vec::new();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else {
            attrs.push((rest.to_ascii_lowercase(), String::new()));
            break;
        };
        let key = rest[..eq].trim().to_ascii_lowercase();
        let after = rest[eq + 1..].trim_start();
        let (value, next) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => match after[1..].find(q) {
                Some(end) => (&after[1..1 + end], &after[2 + end..]),
                None => (&after[1..], ""),
            },
            _ => match after.find(char::is_whitespace) {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            },
        };
        attrs.push((key, decode_attr(value)));
        rest = next.trim_start();
    }
    (name.to_ascii_lowercase(), attrs)
}

fn decode_attr(v: &str) -> String {
    v.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn attr<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn entity_for(
    name: &str,
    attrs: &[(String, String)],
    parent: Option<&mut Open>,
) -> Result<Option<Value>, String> {
    let simple = |t: &str| Ok(Some(json!({ "type": t })));
    match name {
        "b" | "strong" => simple("bold"),
        "i" | "em" => simple("italic"),
        "u" | "ins" => simple("underline"),
        "s" | "strike" | "del" => simple("strikethrough"),
        "tg-spoiler" => simple("spoiler"),
        "span" if attr(attrs, "class") == Some("tg-spoiler") => simple("spoiler"),
        "span" => Err("Unsupported start tag \"span\"".into()),
        "blockquote" if attr(attrs, "expandable").is_some() => simple("expandable_blockquote"),
        "blockquote" => simple("blockquote"),
        "pre" => simple("pre"),
        "code" => {
            // <pre><code class="language-x"> gives the pre block its language.
            if let Some(parent) = parent {
                if parent.name == "pre" {
                    if let (Some(entity), Some(lang)) = (
                        parent.entity.as_mut(),
                        attr(attrs, "class").and_then(|c| c.strip_prefix("language-")),
                    ) {
                        entity["language"] = json!(lang);
                    }
                    return Ok(None);
                }
            }
            simple("code")
        }
        "a" => {
            let href = attr(attrs, "href").unwrap_or_default();
            if let Some(id) = href.strip_prefix("tg://user?id=") {
                let id: i64 = id
                    .parse()
                    .map_err(|_| "Wrong user identifier".to_string())?;
                return Ok(Some(
                    json!({ "type": "text_mention", "user": { "id": id, "is_bot": false, "first_name": "" } }),
                ));
            }
            if href.is_empty() {
                return Ok(None);
            }
            Ok(Some(json!({ "type": "text_link", "url": href })))
        }
        "tg-emoji" => Ok(None),
        other => Err(format!("Unsupported start tag \"{other}\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags_entities_and_utf16_offsets() {
        let (text, entities) =
            parse("😀 <b>bold &amp; <i>both</i></b> &lt;x&gt; <a href=\"https://e.org/?a=1&amp;b=2\">link</a>")
                .expect("valid");
        assert_eq!(text, "😀 bold & both <x> link");
        assert_eq!(
            entities,
            vec![
                json!({"type": "bold", "offset": 3, "length": 11}),
                json!({"type": "italic", "offset": 10, "length": 4}),
                json!({"type": "text_link", "url": "https://e.org/?a=1&b=2", "offset": 19, "length": 4}),
            ]
        );
    }

    #[test]
    fn pre_with_a_language() {
        let (text, entities) =
            parse("<pre><code class=\"language-rust\">fn x()</code></pre>").expect("valid");
        assert_eq!(text, "fn x()");
        assert_eq!(
            entities,
            vec![json!({"type": "pre", "language": "rust", "offset": 0, "length": 6})]
        );
    }

    #[test]
    fn rejects_malformed_html_like_telegram() {
        for bad in [
            "<b>x",
            "<b>x</i>",
            "x</b>",
            "<foo>x</foo>",
            "a < b",
            "<span>x</span>",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(
                err.starts_with("Bad Request: can't parse entities"),
                "{bad}: {err}"
            );
        }
    }
}
