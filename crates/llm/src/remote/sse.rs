//! Server-sent events of an OpenAI-compatible `/v1/chat/completions` stream:
//! one `data: {json}` line per chunk, `data: [DONE]` at the end.
//!
//! Owns: turning one SSE line into a [`Chunk`] (text delta, finish reason,
//! usage) or a typed error for anything malformed. Never: network I/O.

use serde_json::Value;

use super::RemoteError;

/// What one `data:` line carried.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chunk {
    /// Text of `choices[0].delta.content` (empty for role-only or final chunks).
    pub text: String,
    /// `choices[0].finish_reason` when the server set it (`stop`, `length`, ...).
    pub finish: Option<String>,
    /// `usage.prompt_tokens` / `usage.completion_tokens`, when sent.
    pub prompt_tokens: Option<usize>,
    pub completion_tokens: Option<usize>,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// Blank line, comment (`:`), or a field other than `data` (`event:`, `id:`, `retry:`).
    Skip,
    Data(Chunk),
    Done,
}

/// Parses one line of the stream (without its newline).
pub fn parse_line(line: &str) -> Result<Line, RemoteError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() || line.starts_with(':') {
        return Ok(Line::Skip);
    }
    let Some(data) = line.strip_prefix("data:") else {
        if ["event:", "id:", "retry:"].iter().any(|f| line.starts_with(f)) {
            return Ok(Line::Skip);
        }
        return Err(RemoteError::Malformed(format!("not an SSE field: {}", clip(line))));
    };
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(Line::Done);
    }
    let v: Value = serde_json::from_str(data).map_err(|e| RemoteError::Malformed(format!("{e}: {}", clip(data))))?;
    if let Some(err) = v.get("error") {
        let msg = err.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| err.to_string());
        return Err(RemoteError::Server(msg));
    }
    let choices = v.get("choices").and_then(Value::as_array);
    let usage = v.get("usage").filter(|u| u.is_object());
    let Some(choices) = choices else {
        if usage.is_some() {
            return Ok(Line::Data(with_usage(Chunk::default(), usage)));
        }
        return Err(RemoteError::Malformed(format!("chunk without `choices`: {}", clip(data))));
    };
    let mut c = Chunk::default();
    if let Some(first) = choices.first() {
        let delta = first.get("delta").ok_or_else(|| RemoteError::Malformed(format!("choice without `delta`: {}", clip(data))))?;
        match delta.get("content") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => c.text = s.clone(),
            Some(other) => return Err(RemoteError::Malformed(format!("`delta.content` is not a string: {}", clip(&other.to_string())))),
        }
        c.finish = first.get("finish_reason").and_then(Value::as_str).map(str::to_string);
    }
    Ok(Line::Data(with_usage(c, usage)))
}

fn with_usage(mut c: Chunk, usage: Option<&Value>) -> Chunk {
    if let Some(u) = usage {
        let n = |k: &str| u.get(k).and_then(Value::as_u64).map(|n| n as usize);
        c.prompt_tokens = n("prompt_tokens");
        c.completion_tokens = n("completion_tokens");
    }
    c
}

fn clip(s: &str) -> String {
    let mut t: String = s.chars().take(120).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_deltas_done_usage_and_skips_comments() {
        let l = parse_line(r#"data: {"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#).unwrap();
        assert_eq!(l, Line::Data(Chunk { text: "Hel".into(), ..Default::default() }));
        let l = parse_line(r#"data: {"choices":[{"delta":{},"finish_reason":"length"}],"usage":{"prompt_tokens":12,"completion_tokens":3}}"#).unwrap();
        assert_eq!(l, Line::Data(Chunk { text: String::new(), finish: Some("length".into()), prompt_tokens: Some(12), completion_tokens: Some(3) }));
        assert_eq!(parse_line("data: [DONE]").unwrap(), Line::Done);
        assert_eq!(parse_line(": keep-alive").unwrap(), Line::Skip);
        assert_eq!(parse_line("event: message\r\n").unwrap(), Line::Skip);
        assert_eq!(parse_line("\n").unwrap(), Line::Skip);
        assert_eq!(parse_line("").unwrap(), Line::Skip);
    }

    #[test]
    fn junk_is_a_typed_error_not_text() {
        assert!(matches!(parse_line("data: {not json"), Err(RemoteError::Malformed(_))));
        assert!(matches!(parse_line("<html>502 Bad Gateway</html>"), Err(RemoteError::Malformed(_))));
        assert!(matches!(parse_line(r#"data: {"object":"x"}"#), Err(RemoteError::Malformed(_))));
        assert!(matches!(parse_line(r#"data: {"choices":[{"delta":{"content":5}}]}"#), Err(RemoteError::Malformed(_))));
        let e = parse_line(r#"data: {"error":{"message":"model overloaded"}}"#).unwrap_err();
        assert!(matches!(&e, RemoteError::Server(m) if m == "model overloaded"), "{e}");
    }
}
