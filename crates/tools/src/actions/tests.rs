use std::cell::Cell;

use serde_json::json;

use super::*;
use crate::builtin::testutil::{ctx, dev_store};
use crate::spec::{builtin_spec, BOOK_APPOINTMENT, CREATE_TICKET, PRICE_LOOKUP};

const NOW: &str = "2026-12-07T08:30:00Z";

fn booking() -> ToolSpec {
    builtin_spec(BOOK_APPOINTMENT).unwrap()
}

#[test]
fn serialises_as_the_contract() {
    let (_d, s) = dev_store();
    let p = s.propose("t1", &booking(), json!({"date": "2026-12-08"})).unwrap();
    let v = serde_json::to_value(&p.action).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["arguments", "error", "id", "missing", "result", "status", "tool"]);
    assert_eq!(v["status"], "needs_input");
    assert_eq!(v["missing"], json!(["time"]));
    assert_eq!(v["arguments"], json!({"date": "2026-12-08", "duration_minutes": 30}));
    let id = v["id"].as_str().unwrap();
    assert!(id.starts_with("act_") && id.len() == 16, "{id}");
}

#[test]
fn missing_then_filled_then_confirmed_twice_books_once() {
    let (_d, s) = dev_store();
    let c = ctx(NOW);
    let p = s.propose("t1", &booking(), json!({"date": "2026-12-08", "time": "", "topic": null})).unwrap();
    assert_eq!(p.action.status, Status::NeedsInput);
    assert_eq!(p.action.missing, ["time"]);
    assert!(matches!(s.confirm(&p.action.id, &c), Err(ToolError::InvalidTransition { .. })));
    let f = s.fill(&p.action.id, &booking(), json!({"time": "10:30"})).unwrap();
    assert_eq!(f.action.id, p.action.id);
    assert_eq!(f.action.status, Status::NeedsConfirmation);
    assert!(f.action.missing.is_empty());
    assert!(s.appointments().unwrap().is_empty(), "nothing runs before confirmation");

    let first = s.confirm(&f.action.id, &c).unwrap();
    assert_eq!(first.outcome, Outcome::Executed);
    assert_eq!(first.action.status, Status::Succeeded);
    assert_eq!(first.action.result.as_ref().unwrap()["time"], "10:30");
    let second = s.confirm(&f.action.id, &c).unwrap();
    assert_eq!(second.outcome, Outcome::AlreadyDone);
    assert_eq!(second.action, first.action);
    assert_eq!(s.appointments().unwrap().len(), 1);
    assert_eq!(s.appointments().unwrap()[0].action_id.as_deref(), Some(f.action.id.as_str()));

    // the same request again in the same thread is the same action: no second booking
    let again = s.propose("t1", &booking(), json!({"time": "10:30", "date": "2026-12-08", "duration_minutes": 30})).unwrap();
    assert!(again.existing);
    assert_eq!(again.action.id, f.action.id);
    assert_eq!(s.confirm(&again.action.id, &c).unwrap().outcome, Outcome::AlreadyDone);
    // another thread asking for the same slot is a new action, refused by the calendar
    let other = s.propose("t2", &booking(), json!({"date": "2026-12-08", "time": "10:30"})).unwrap();
    assert!(!other.existing);
    let r = s.confirm(&other.action.id, &c).unwrap();
    assert_eq!(r.action.status, Status::Failed);
    assert_eq!(r.action.result.as_ref().unwrap()["code"], "slot_unavailable");
    assert!(!r.action.result.as_ref().unwrap()["free_slots"].as_array().unwrap().is_empty());
    assert!(r.action.error.as_deref().unwrap().contains("conflicts with appointment"));
    assert_eq!(s.appointments().unwrap().len(), 1);
}

#[test]
fn a_failure_between_the_insert_and_the_success_leaves_nothing_half_done() {
    let (_d, s) = dev_store();
    let c = ctx(NOW);
    let p = s.propose("t1", &booking(), json!({"date": "2026-12-09", "time": "09:00"})).unwrap();
    // the appointment row is written first; then the action's success fails
    s.conn
        .execute_batch(
            "CREATE TEMP TRIGGER boom BEFORE UPDATE OF status ON actions WHEN NEW.status = 'succeeded'
             BEGIN SELECT RAISE(ABORT, 'simulated crash'); END;",
        )
        .unwrap();
    let e = s.confirm(&p.action.id, &c).unwrap_err();
    assert!(e.to_string().contains("simulated crash"), "{e}");
    assert!(s.appointments().unwrap().is_empty(), "the appointment was rolled back with the action");
    assert_eq!(s.get(&p.action.id).unwrap().status, Status::NeedsConfirmation);
    s.conn.execute_batch("DROP TRIGGER boom").unwrap();
    // the retry after the "crash" executes exactly once
    assert_eq!(s.confirm(&p.action.id, &c).unwrap().outcome, Outcome::Executed);
    assert_eq!(s.confirm(&p.action.id, &c).unwrap().outcome, Outcome::AlreadyDone);
    assert_eq!(s.appointments().unwrap().len(), 1);
}

const KILL_KEY: [u8; 32] = [7; 32];

/// Run by `a_killed_process_leaves_both_or_neither` as a child process:
/// books slot after slot until it is killed.
#[test]
#[ignore = "a child of a_killed_process_leaves_both_or_neither"]
fn child_books_until_killed() {
    let Some(dir) = std::env::var_os("TRESOR_TOOLS_KILL_DIR") else { return };
    let s = ToolStore::open(Path::new(&dir), &tresor_guard::crypto::WorkspaceKey::from_bytes(KILL_KEY)).unwrap();
    let c = ctx(NOW);
    let mut day = jiff::civil::date(2026, 12, 28);
    loop {
        if matches!(day.weekday(), jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday) {
            day = day.tomorrow().unwrap();
            continue;
        }
        for hour in 9..17 {
            for minute in [0, 30] {
                let args = json!({"date": day.to_string(), "time": format!("{hour:02}:{minute:02}")});
                let p = s.propose("kill", &booking(), args).unwrap();
                let _ = s.confirm(&p.action.id, &c).unwrap();
            }
        }
        day = day.tomorrow().unwrap();
    }
}

#[test]
fn a_killed_process_leaves_both_or_neither() {
    let dir = tempfile::tempdir().unwrap();
    let key = tresor_guard::crypto::WorkspaceKey::from_bytes(KILL_KEY);
    let s = ToolStore::open(dir.path(), &key).unwrap();
    crate::import::import_calendar(&s, &crate::import::tests::dev("calendar.ics")).unwrap();
    drop(s);
    let exe = std::env::current_exe().unwrap();
    let mut booked_before = 0;
    for round in 0..6u64 {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "actions::tests::child_books_until_killed", "--ignored", "--nocapture"])
            .env("TRESOR_TOOLS_KILL_DIR", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + 97 * round));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let s = ToolStore::open(dir.path(), &key).unwrap();
        let apts = s.appointments().unwrap();
        let actions = s.list("kill").unwrap();
        for a in &apts {
            let act = actions.iter().find(|x| Some(&x.id) == a.action_id.as_ref()).expect("an appointment without its action");
            assert_eq!(act.status, Status::Succeeded, "appointment {} of a {} action", a.appointment_id, act.status);
        }
        for act in actions.iter().filter(|a| a.status == Status::Succeeded) {
            assert!(apts.iter().any(|a| a.action_id.as_ref() == Some(&act.id)), "succeeded without its appointment: {}", act.id);
        }
        assert!(actions.iter().all(|a| matches!(a.status, Status::Succeeded | Status::NeedsConfirmation)), "no other state");
        // the next child books the next slots: what is done stays done, once
        assert!(apts.len() >= booked_before);
        booked_before = apts.len();
    }
    assert!(booked_before > 0, "the child never got to book anything: the test proved nothing");
}

#[test]
fn an_interrupted_external_call_is_reported_never_rerun() {
    let (dir, s) = dev_store();
    let mut spec = builtin_spec(CREATE_TICKET).unwrap();
    spec.name = "helpdesk.open".into();
    spec.source = ToolSource::Mcp("helpdesk".into());
    let p = s.propose("t1", &spec, json!({"subject": "s", "description": "d"})).unwrap();
    // as if a process died after marking it running
    s.conn
        .execute("UPDATE actions SET status = 'running', runner_pid = 2147483646 WHERE id = ?1", params![p.action.id])
        .unwrap();
    let key = crate::builtin::testutil::key();
    drop(s);
    let s = ToolStore::open(dir.path(), &key).unwrap();
    let a = s.get(&p.action.id).unwrap();
    assert_eq!(a.status, Status::Failed);
    assert!(a.error.as_deref().unwrap().contains("interrupted; it may have run"));
    struct Never(ExecCtx, ToolSpec, Cell<u32>);
    impl Executor for Never {
        fn ctx(&self) -> &ExecCtx {
            &self.0
        }
        fn spec(&self, _: &str) -> Option<ToolSpec> {
            Some(self.1.clone())
        }
        fn call_external(&self, _: &ToolSpec, _: &Value, _: Duration) -> Result<Value> {
            self.2.set(self.2.get() + 1);
            Ok(json!({}))
        }
    }
    let ex = Never(ctx(NOW), spec, Cell::new(0));
    assert_eq!(s.confirm(&p.action.id, &ex).unwrap().outcome, Outcome::AlreadyDone);
    assert_eq!(ex.2.get(), 0, "never re-executed");
}

/// An external tool with scripted answers.
struct Scripted {
    ctx: ExecCtx,
    spec: ToolSpec,
    answers: std::cell::RefCell<Vec<Result<Value>>>,
    calls: Cell<u32>,
}

impl Executor for Scripted {
    fn ctx(&self) -> &ExecCtx {
        &self.ctx
    }
    fn spec(&self, name: &str) -> Option<ToolSpec> {
        (name == self.spec.name).then(|| self.spec.clone())
    }
    fn call_external(&self, _: &ToolSpec, _: &Value, _: Duration) -> Result<Value> {
        self.calls.set(self.calls.get() + 1);
        self.answers.borrow_mut().remove(0)
    }
}

fn external(answers: Vec<Result<Value>>, retries: u32) -> Scripted {
    let spec = ToolSpec {
        name: "time.get_current_time".into(),
        description_en: "now".into(),
        description_de: "jetzt".into(),
        schema: json!({"type": "object", "properties": {"timezone": {"type": "string"}}, "additionalProperties": false}),
        side_effect: SideEffect::SideEffect,
        timeout_ms: 1000,
        retries,
        source: ToolSource::Mcp("time".into()),
    };
    Scripted { ctx: ctx(NOW), spec, answers: std::cell::RefCell::new(answers), calls: Cell::new(0) }
}

#[test]
fn transient_failures_are_retried_with_backoff_others_are_not() {
    let (_d, s) = dev_store();
    let ex = external(vec![Err(ToolError::Transient("connection refused".into())), Ok(json!({"time": "10:00"}))], 3);
    let p = s.propose("t", &ex.spec, json!({"timezone": "Europe/Berlin"})).unwrap();
    let r = s.confirm(&p.action.id, &ex).unwrap();
    assert_eq!((r.action.status, ex.calls.get()), (Status::Succeeded, 2));
    assert_eq!(r.action.attempts, 2);
    assert_eq!(r.action.result, Some(json!({"time": "10:00"})));

    let ex = external(vec![Err(ToolError::Transient("a".into())), Err(ToolError::Transient("b".into())), Ok(json!(1))], 2);
    let p = s.propose("t", &ex.spec, json!({"timezone": "UTC"})).unwrap();
    let r = s.confirm(&p.action.id, &ex).unwrap();
    assert_eq!((r.action.status, ex.calls.get()), (Status::Failed, 2), "at most `retries` attempts");

    let ex = external(vec![Err(ToolError::External { tool: "x".into(), message: "junk".into() }), Ok(json!(1))], 3);
    let p = s.propose("t", &ex.spec, json!({"timezone": "Asia/Tokyo"})).unwrap();
    let r = s.confirm(&p.action.id, &ex).unwrap();
    assert_eq!((r.action.status, ex.calls.get()), (Status::Failed, 1));
    assert!(r.action.error.as_deref().unwrap().contains("junk"));

    let ex = external(vec![Err(ToolError::Timeout { tool: "time.get_current_time".into(), ms: 1000 })], 3);
    let p = s.propose("t", &ex.spec, json!({})).unwrap();
    let r = s.confirm(&p.action.id, &ex).unwrap();
    assert_eq!(r.action.status, Status::TimedOut);
    assert_eq!(s.confirm(&p.action.id, &ex).unwrap().outcome, Outcome::AlreadyDone);
    assert_eq!(ex.calls.get(), 1);
}

#[test]
fn decline_invalid_arguments_read_only_and_audit() {
    let (_d, s) = dev_store();
    let c = ctx(NOW);
    let p = s.propose("t1", &booking(), json!({"date": "2026-12-08", "time": "11:00"})).unwrap();
    let d = s.decline(&p.action.id).unwrap();
    assert_eq!(d.status, Status::Declined);
    assert_eq!(s.confirm(&p.action.id, &c).unwrap().outcome, Outcome::AlreadyDone);
    assert!(s.appointments().unwrap().is_empty());
    // after a decline the same request is a fresh proposal
    let again = s.propose("t1", &booking(), json!({"date": "2026-12-08", "time": "11:00"})).unwrap();
    assert!(!again.existing);
    assert!(s.decline(&again.action.id).is_ok());

    let bad = s.propose("t1", &booking(), json!({"date": "2026-12-08", "time": "11", "duration_minutes": 999})).unwrap();
    assert_eq!(bad.action.status, Status::Failed);
    assert!(bad.action.error.as_deref().unwrap().contains("duration_minutes"), "{:?}", bad.action.error);
    assert!(matches!(s.decline(&bad.action.id), Err(ToolError::InvalidTransition { .. })));
    let malformed = s.propose("t1", &booking(), json!("{\"date\": ")).unwrap_err();
    assert!(malformed.to_string().contains("not valid JSON"));

    let price = builtin_spec(PRICE_LOOKUP).unwrap();
    let p = s.propose("t1", &price, json!("{\"product\": \"Thin Client TC-10\"}")).unwrap();
    let r = s.confirm(&p.action.id, &c).unwrap();
    assert_eq!(r.action.result.as_ref().unwrap()["price"], "379.00");
    let nf = s.propose("t1", &price, json!({"product": "unicorn"})).unwrap();
    let r = s.confirm(&nf.action.id, &c).unwrap();
    assert_eq!(r.action.status, Status::Failed);
    assert_eq!(r.action.result.as_ref().unwrap()["found"], false);

    let audit = serde_json::to_string(&r.action.audit_fields()).unwrap();
    assert!(!audit.contains("unicorn"), "no argument values in the audit: {audit}");
    assert_eq!(r.action.audit_fields().argument_hash, crate::schema::arguments_hash(&json!({"product": "unicorn"})));
    assert_eq!(r.action.audit_fields().outcome, "failed");
    assert_eq!(s.list("t1").unwrap().len(), 5, "two declined, one invalid, two lookups; the malformed call is no action");
    assert!(s.list("nope").unwrap().is_empty());
    assert!(matches!(s.get("act_000000000000"), Err(ToolError::NoSuchAction(_))));
}

#[test]
fn a_ticket_action_keeps_masked_arguments_once_done() {
    let (_d, s) = dev_store();
    let spec = builtin_spec(CREATE_TICKET).unwrap();
    let p = s.propose("t1", &spec, json!({"subject": "Rechnung", "description": "Bitte an max.mustermann@example.de schicken", "priority": "high"})).unwrap();
    let r = s.confirm(&p.action.id, &ctx(NOW)).unwrap();
    assert_eq!(r.action.status, Status::Succeeded);
    let stored = s.get(&p.action.id).unwrap();
    assert!(!stored.arguments.to_string().contains("mustermann"), "{}", stored.arguments);
    assert_eq!(stored.args_hash, p.action.args_hash, "the hash is of what was proposed");
    assert_eq!(s.tickets().unwrap()[0].priority, "high");
}

#[test]
fn propose_and_run_runs_read_only_tools_and_stops_side_effects_for_confirmation() {
    let (_d, s) = dev_store();
    let c = ctx(NOW);
    let price = builtin_spec(PRICE_LOOKUP).unwrap();
    let a = s.propose_and_run("t", &price, json!({"product": "USV 1500 VA"}), false, &c).unwrap();
    assert_eq!(a.status, Status::Succeeded);
    assert_eq!(a.result.unwrap()["price"], "429.00");
    let order = builtin_spec(crate::spec::ORDER_STATUS).unwrap();
    let a = s.propose_and_run("t", &order, json!({}), false, &c).unwrap();
    assert_eq!((a.status, a.missing), (Status::NeedsInput, vec!["order_id".to_string()]));
    let a = s.propose_and_run("t", &booking(), json!({"date": "2026-12-08", "time": "11:00"}), false, &c).unwrap();
    assert_eq!(a.status, Status::NeedsConfirmation);
    assert!(s.appointments().unwrap().is_empty());
    let a = s.propose_and_run("t", &booking(), json!({"date": "2026-12-08", "time": "11:00"}), true, &c).unwrap();
    assert_eq!(a.status, Status::Succeeded, "--yes: the same action, now run");
    let a2 = s.propose_and_run("t", &booking(), json!({"date": "2026-12-08", "time": "11:00"}), true, &c).unwrap();
    assert_eq!((a2.id, a2.status), (a.id, Status::Succeeded));
    assert_eq!(s.appointments().unwrap().len(), 1);
}

#[test]
fn unambiguous_spellings_are_normalised_before_the_schema_check() {
    let (_d, s) = dev_store();
    let p = s.propose("t", &booking(), json!({"date": " 2026-12-08", "time": "9:30:00", "duration_minutes": "45"})).unwrap();
    assert_eq!(p.action.status, Status::NeedsConfirmation, "{:?}", p.action.error);
    assert_eq!(p.action.arguments, json!({"date": "2026-12-08", "time": "09:30", "duration_minutes": 45}));
    // the same request spelled differently is the same action
    let q = s.propose("t", &booking(), json!({"date": "2026-12-08", "time": "09:30", "duration_minutes": 45.0})).unwrap();
    assert!(q.existing);
    let t = s.propose("t", &builtin_spec(CREATE_TICKET).unwrap(), json!({"subject": "a", "description": "b", "priority": " High"})).unwrap();
    assert_eq!(t.action.arguments["priority"], "high");
    let bad = s.propose("t", &booking(), json!({"date": "2026-12-08", "time": "9.30", "duration_minutes": "lots"})).unwrap();
    assert_eq!(bad.action.status, Status::Failed);
}
