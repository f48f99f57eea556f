//! Tool-call evaluation on cases in the format of shared/eval/tools_dev
//! (see its README): every case is asked once with its `now`, and the
//! answer's `actions` are scored — tool selection, arguments (after the
//! README's normalisation), false tool calls on requests that need none,
//! JSON validity of the arguments against the tool's schema, task success
//! (the answer holds the looked-up value) and missing-argument handling,
//! overall and per language.
//!
//! Owns the metrics, their definitions and the table. Never: imports data or
//! ingests documents (the caller sets up a scratch data dir), or asserts a
//! score (gates live in the tests that call it).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Deserialize)]
pub struct ToolCase {
    pub id: String,
    pub lang: String,
    pub kind: String,
    pub now: String,
    pub message: String,
    pub expect: Expect,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Expect {
    pub tool: Option<String>,
    pub arguments: Option<Map<String, Value>>,
    pub missing: Option<Vec<String>>,
    pub answer_contains: Vec<String>,
    pub answer_contains_any: Vec<Vec<String>>,
}

/// Reads a cases file (JSONL); a bad line is an error naming FILE:LINE.
pub fn load_cases(path: &Path) -> Result<Vec<ToolCase>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?);
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub id: String,
    pub lang: String,
    pub kind: String,
    pub expected_tool: Option<String>,
    pub tool: Option<String>,
    pub status: Option<String>,
    pub arguments: Value,
    pub missing: Vec<String>,
    pub selection_ok: bool,
    /// None: the case checks no arguments.
    pub arguments_ok: Option<bool>,
    /// Every action names a known tool and its arguments validate (None: no action).
    pub json_valid: Option<bool>,
    /// None: not a price/order case.
    pub task_ok: Option<bool>,
    /// None: not a missing-argument case.
    pub missing_ok: Option<bool>,
    pub answer: String,
    pub total_ms: f64,
}

fn norm_arg(name: &str, v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null => return None,
        other => other.to_string(),
    };
    Some(match name {
        "order_id" => s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_uppercase(),
        "time" => {
            let parts: Vec<&str> = s.trim().split(':').collect();
            match parts.as_slice() {
                [h, m] | [h, m, _] if h.len() <= 2 && m.len() == 2 => format!("{:0>2}:{m}", h),
                _ => s,
            }
        }
        "duration_minutes" => s.trim().parse::<f64>().map(|f| format!("{}", f as i64)).unwrap_or(s),
        "priority" => s.trim().to_lowercase(),
        _ => s,
    })
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// `term` occurs in `text` (both case- and whitespace-normalised); a number
/// only as a whole number (`49` is not inside `49.90` or `149`).
pub fn contains_term(text: &str, term: &str) -> bool {
    let (text, term) = (squash(text), squash(term));
    if term.is_empty() {
        return false;
    }
    let numeric = term.chars().next().is_some_and(|c| c.is_ascii_digit());
    if !numeric {
        return text.contains(&term);
    }
    let b = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find(&term) {
        let (s, e) = (from + i, from + i + term.len());
        let digit = |j: usize| b.get(j).is_some_and(|c| c.is_ascii_digit());
        let sep = |j: usize| b.get(j).is_some_and(|c| *c == b'.' || *c == b',');
        let before_ok = s == 0 || !(digit(s - 1) || (sep(s - 1) && s >= 2 && digit(s - 2)));
        let after_ok = !(digit(e) || (sep(e) && digit(e + 1)));
        if before_ok && after_ok {
            return true;
        }
        from = s + 1;
    }
    false
}

/// Scores one answer (the `ask --json` object) against its case. `validate`
/// says whether a tool exists and its arguments satisfy its schema, with the
/// listed `missing` fields exempt from `required`.
pub fn score(case: &ToolCase, answer: &Value, validate: &dyn Fn(&str, &Value, &[String]) -> bool) -> CaseResult {
    let actions = answer.get("actions").and_then(Value::as_array);
    let first = actions.and_then(|a| a.first());
    let tool = first.and_then(|a| a.get("tool")).and_then(Value::as_str).map(str::to_string);
    let status = first.and_then(|a| a.get("status")).and_then(Value::as_str).map(str::to_string);
    let arguments = first.and_then(|a| a.get("arguments")).cloned().unwrap_or(Value::Null);
    let missing: Vec<String> = first
        .and_then(|a| a.get("missing"))
        .and_then(Value::as_array)
        .map(|m| m.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let selection_ok = match (&case.expect.tool, actions) {
        (None, Some(a)) => a.is_empty(),
        (Some(t), Some(_)) => tool.as_deref() == Some(t.as_str()),
        (_, None) => false,
    };
    let arguments_ok = case.expect.arguments.as_ref().filter(|m| !m.is_empty()).map(|want| {
        selection_ok
            && want.iter().all(|(k, v)| {
                let got = arguments.get(k).and_then(|g| norm_arg(k, g));
                got.is_some() && got == norm_arg(k, v)
            })
    });
    let json_valid = actions.filter(|a| !a.is_empty()).map(|acts| {
        acts.iter().all(|a| {
            let t = a.get("tool").and_then(Value::as_str).unwrap_or("");
            let args = a.get("arguments").cloned().unwrap_or(Value::Null);
            let miss: Vec<String> = a
                .get("missing")
                .and_then(Value::as_array)
                .map(|m| m.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            args.is_object() && validate(t, &args, &miss)
        })
    });
    let text = answer.get("answer").and_then(Value::as_str).unwrap_or("").to_string();
    let has_answer_checks = !case.expect.answer_contains.is_empty() || !case.expect.answer_contains_any.is_empty();
    let task_ok = (matches!(case.kind.as_str(), "price" | "order") && has_answer_checks).then(|| {
        selection_ok
            && case.expect.answer_contains.iter().all(|t| contains_term(&text, t))
            && case.expect.answer_contains_any.iter().all(|any| any.iter().any(|t| contains_term(&text, t)))
    });
    let missing_ok = case.expect.missing.as_ref().map(|want| {
        selection_ok && status.as_deref() == Some("needs_input") && want.iter().all(|w| missing.contains(w))
    });
    CaseResult {
        id: case.id.clone(),
        lang: case.lang.clone(),
        kind: case.kind.clone(),
        expected_tool: case.expect.tool.clone(),
        tool,
        status,
        arguments,
        missing,
        selection_ok,
        arguments_ok,
        json_valid,
        task_ok,
        missing_ok,
        answer: text,
        total_ms: answer.pointer("/timings/total_ms").and_then(Value::as_f64).unwrap_or(0.0),
    }
}

/// A share with its count (`k` of `n`); None when nothing was scored.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq)]
pub struct Rate {
    pub rate: Option<f64>,
    pub k: usize,
    pub n: usize,
}

impl Rate {
    fn of(it: impl Iterator<Item = bool>) -> Rate {
        let (mut k, mut n) = (0, 0);
        for b in it {
            n += 1;
            k += b as usize;
        }
        Rate { rate: (n > 0).then(|| k as f64 / n as f64), k, n }
    }
    fn show(&self) -> String {
        match self.rate {
            Some(r) => format!("{r:.3} ({}/{})", self.k, self.n),
            None => "–".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Metrics {
    pub cases: usize,
    pub selection_accuracy: Rate,
    pub argument_accuracy: Rate,
    /// Requests that need no tool but got an action (lower is better).
    pub false_tool_calls: Rate,
    pub json_validity: Rate,
    pub task_success: Rate,
    pub missing_asked: Rate,
}

fn metrics<'a>(rs: impl Iterator<Item = &'a CaseResult> + Clone) -> Metrics {
    Metrics {
        cases: rs.clone().count(),
        selection_accuracy: Rate::of(rs.clone().map(|r| r.selection_ok)),
        argument_accuracy: Rate::of(rs.clone().filter_map(|r| r.arguments_ok)),
        false_tool_calls: Rate::of(rs.clone().filter(|r| r.expected_tool.is_none()).map(|r| r.tool.is_some())),
        json_validity: Rate::of(rs.clone().filter_map(|r| r.json_valid)),
        task_success: Rate::of(rs.clone().filter_map(|r| r.task_ok)),
        missing_asked: Rate::of(rs.clone().filter_map(|r| r.missing_ok)),
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ToolsEvalReport {
    /// Whether the model filled arguments under the JSON-Schema grammar: "on", "off (free)", "off (extractor only)".
    pub grammar: String,
    pub all: Metrics,
    pub by_lang: BTreeMap<String, Metrics>,
    pub items: Vec<CaseResult>,
}

pub fn summarise(grammar: &str, items: Vec<CaseResult>) -> ToolsEvalReport {
    let mut by_lang = BTreeMap::new();
    let langs: std::collections::BTreeSet<String> = items.iter().map(|r| r.lang.clone()).collect();
    for l in langs {
        by_lang.insert(l.clone(), metrics(items.iter().filter(|r| r.lang == l)));
    }
    ToolsEvalReport { grammar: grammar.into(), all: metrics(items.iter()), by_lang, items }
}

/// The table: one row per metric, columns all / per language.
pub fn table(r: &ToolsEvalReport) -> String {
    let mut cols: Vec<(&str, &Metrics)> = vec![("all", &r.all)];
    cols.extend(r.by_lang.iter().map(|(l, m)| (l.as_str(), m)));
    let mut out = format!("{:<28}", format!("metric (grammar {})", r.grammar));
    for (name, m) in &cols {
        out.push_str(&format!(" | {:>18}", format!("{name} ({})", m.cases)));
    }
    out.push('\n');
    let rows: [(&str, fn(&Metrics) -> Rate); 6] = [
        ("selection accuracy", |m| m.selection_accuracy),
        ("argument accuracy", |m| m.argument_accuracy),
        ("false tool calls (lower)", |m| m.false_tool_calls),
        ("JSON validity", |m| m.json_validity),
        ("task success", |m| m.task_success),
        ("missing args asked for", |m| m.missing_asked),
    ];
    for (label, f) in rows {
        out.push_str(&format!("{label:<28}"));
        for (_, m) in &cols {
            out.push_str(&format!(" | {:>18}", f(m).show()));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn case(v: Value) -> ToolCase {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn whole_numbers_only() {
        assert!(contains_term("It costs 1.290,00 EUR.", "1.290,00"));
        assert!(contains_term("It costs 49 EUR", "49"));
        assert!(!contains_term("It costs 49.90 EUR", "49"));
        assert!(!contains_term("It costs 149 EUR", "49"));
        assert!(contains_term("Status: On   Hold", "on hold"));
    }

    #[test]
    fn arguments_are_compared_after_normalisation() {
        let c = case(json!({"id": "x", "lang": "en", "kind": "booking", "now": "2026-12-07T09:30:00+01:00", "message": "m",
            "expect": {"tool": "book_appointment", "arguments": {"date": "2026-12-08", "time": "9:30", "duration_minutes": 60}}}));
        let a = json!({"answer": "ok", "actions": [{"tool": "book_appointment", "status": "needs_confirmation",
            "arguments": {"date": "2026-12-08", "time": "09:30:00", "duration_minutes": "60"}, "missing": []}]});
        let r = score(&c, &a, &|_, _, _| true);
        assert!(r.selection_ok && r.arguments_ok == Some(true) && r.json_valid == Some(true));
        let wrong = json!({"answer": "ok", "actions": [{"tool": "book_appointment", "arguments": {"date": "2026-12-09", "time": "09:30"}}]});
        assert_eq!(score(&c, &wrong, &|_, _, _| true).arguments_ok, Some(false));
    }

    #[test]
    fn a_needless_action_is_a_false_call_and_missing_output_scores_wrong() {
        let c = case(json!({"id": "n", "lang": "de", "kind": "smalltalk", "now": "2026-12-07T09:30:00+01:00", "message": "Danke!", "expect": {"tool": null}}));
        let called = score(&c, &json!({"answer": "", "actions": [{"tool": "create_ticket", "arguments": {}}]}), &|_, _, _| false);
        assert!(!called.selection_ok && called.json_valid == Some(false));
        let none = score(&c, &json!({"answer": "Gern!", "actions": []}), &|_, _, _| false);
        assert!(none.selection_ok && none.json_valid.is_none());
        let garbage = score(&c, &json!({"answer": "x"}), &|_, _, _| true);
        assert!(!garbage.selection_ok);
        let rep = summarise("on", vec![called, none, garbage]);
        assert_eq!(rep.all.false_tool_calls, Rate { rate: Some(1.0 / 3.0), k: 1, n: 3 });
        assert!(table(&rep).contains("false tool calls"));
    }

    #[test]
    fn missing_fields_must_be_listed_with_needs_input() {
        let c = case(json!({"id": "m", "lang": "en", "kind": "missing", "now": "2026-12-07T09:30:00+01:00", "message": "Where's my order?",
            "expect": {"tool": "order_status", "missing": ["order_id"]}}));
        let ok = json!({"answer": "Which order number?", "actions": [{"tool": "order_status", "status": "needs_input", "arguments": {}, "missing": ["order_id"]}]});
        assert_eq!(score(&c, &ok, &|_, _, _| true).missing_ok, Some(true));
        let bad = json!({"answer": "?", "actions": [{"tool": "order_status", "status": "failed", "arguments": {}, "missing": []}]});
        assert_eq!(score(&c, &bad, &|_, _, _| true).missing_ok, Some(false));
    }
}

/// Asks every case (with its `now`, no cache, answering from `kb` when given)
/// and scores the answer; `progress` hears about each result.
pub fn evaluate(
    assistant: &mut tresor_assistant::Assistant,
    cases: &[ToolCase],
    kb: Option<&str>,
    progress: &mut dyn FnMut(&CaseResult),
) -> Result<Vec<CaseResult>, String> {
    let specs = assistant.tools().map_err(|e| format!("tools: {e}"))?;
    let validate = |tool: &str, args: &Value, missing: &[String]| -> bool {
        let Some(spec) = specs.iter().find(|s| s.name == tool) else { return false };
        let mut schema = spec.schema.clone();
        if let Some(Value::Array(req)) = schema.get_mut("required") {
            req.retain(|r| r.as_str().is_some_and(|r| !missing.iter().any(|m| m == r)));
        }
        tresor_tools::schema::validate(&schema, args).is_ok()
    };
    let mut out = Vec::new();
    for c in cases {
        let now: jiff::Timestamp = c.now.parse().map_err(|e| format!("case {}: now `{}`: {e}", c.id, c.now))?;
        let req = tresor_assistant::AskRequest { question: c.message.clone(), kb: kb.map(str::to_string), no_cache: true, now: Some(now), ..Default::default() };
        let answer = match assistant.answer(&req, &mut |_| {}) {
            Ok(a) => serde_json::to_value(&a).map_err(|e| e.to_string())?,
            // an error is an answer without actions: it scores as wrong, the run goes on
            Err(e) => serde_json::json!({ "answer": format!("error: {e}") }),
        };
        let r = score(c, &answer, &validate);
        progress(&r);
        out.push(r);
    }
    Ok(out)
}
