//! `log(...)`/`print(...)`/`debug(...)` never write patient data unless the channel opted in with `log_content: true`.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use junction_hl7::MessageBuf;
use junction_script::{ScriptEngine, ScriptOptions, ScriptSource};
use rhai::Map;

const ADT: &str = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|CTRL42|P|2.5\rPID|1||12345||Doe^John\r";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged(log_content: bool) -> String {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let engine = ScriptEngine::new(ScriptOptions {
            channel_name: "adt-in".into(),
            log_content,
            ..ScriptOptions::default()
        })
        .unwrap();
        let script = engine
            .compile(&ScriptSource::inline(
                "c.yaml",
                1,
                r#"log("patient " + msg["PID-5-1"]); print(msg["PID-3"]); debug(msg["PID-5-2"]); msg"#,
            ))
            .unwrap();
        let msg = MessageBuf::parse(ADT.as_bytes()).unwrap();
        engine.run_transform(&script, msg, &mut Map::new()).unwrap();
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    text
}

#[test]
fn log_without_log_content_names_the_message_but_not_its_content() {
    let text = logged(false);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.contains("adt-in") && text.contains("CTRL42") && text.contains("suppressed"),
        "{text}"
    );
    assert!(
        !text.contains("Doe") && !text.contains("12345") && !text.contains("John"),
        "{text}"
    );
}

#[test]
fn log_with_log_content_writes_the_text() {
    let text = logged(true);
    assert!(
        text.contains("patient Doe")
            && text.contains("12345")
            && text.contains("John")
            && text.contains("CTRL42"),
        "{text}"
    );
}
