//! One channel's scripts, compiled once, and the pure per-message pipeline:
//! parse -> declarative rules -> channel filter -> channel transform -> per destination filter -> transform.
//!
//! The same code runs in the engine, in `junction transform` and in `junction test`, so what an analyst
//! tests offline is exactly what runs.

use std::str::FromStr;

use junction_config::{ChannelConfig, Script as ScriptConfig, ScriptOrigin as ConfigOrigin};
use junction_hl7::{MessageBuf, Path};
use junction_script::{
    FilterDecision, Flow, Payload, Script, ScriptEngine, ScriptError, ScriptOptions, ScriptSource,
    TransformOutcome,
};
use junction_store::{Disposition, Output, Processed, StageOutcome, Status, UnixMillis};
use rhai::Map;

/// Why a channel could not be prepared to run.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The script engine could not be set up (e.g. a lookup table failed to load).
    #[error("channel {channel}: {source}")]
    Setup {
        /// Channel name.
        channel: String,
        /// Why.
        source: junction_script::SetupError,
    },
    /// A script failed to compile.
    #[error("channel {channel}, {stage}: {source}")]
    Compile {
        /// Channel name.
        channel: String,
        /// Which script, e.g. `filter` or `destinations[lab].transform`.
        stage: String,
        /// The compile error with file, line and column.
        source: Box<ScriptError>,
    },
    /// A `require` or `match` path is not a valid HL7 path.
    #[error("channel {channel}: invalid rule path {path}: {reason}")]
    RulePath {
        /// Channel name.
        channel: String,
        /// The path as written.
        path: String,
        /// Why it is invalid.
        reason: String,
    },
}

/// How the sender of a message should be answered when the channel acknowledges after processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Processed (queued, or filtered on purpose): AA.
    Accept,
    /// Processing failed (rule, script error, `fail()`): AE with the reason.
    Error(String),
    /// The message itself is refused (unparseable, `reject()`): AR with the reason.
    Reject(String),
}

/// The result of running one message through a channel's pipeline.
#[derive(Debug, Clone)]
pub struct Run {
    /// What the store records and queues.
    pub processed: Processed,
    /// The answer for `ack: processed`.
    pub verdict: Verdict,
    /// Why the message errored, free of message content (stage, script file and line, error kind, rule),
    /// for logs; the full reason is in `processed`. `None` unless the message errored.
    pub summary: Option<String>,
}

/// A destination's scripts.
struct DestinationScripts {
    name: String,
    filter: Option<Script>,
    transform: Option<Script>,
}

/// A channel ready to process messages: its script engine and every script compiled.
pub struct Pipeline {
    channel: String,
    engine: ScriptEngine,
    require: Vec<(String, Path)>,
    matches: Vec<(String, Path, junction_config::regex::Regex)>,
    filter: Option<Script>,
    transform: Option<Script>,
    destinations: Vec<DestinationScripts>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

fn source_of(script: &ScriptConfig) -> ScriptSource {
    match &script.origin {
        ConfigOrigin::File(path) => ScriptSource {
            origin: junction_script::ScriptOrigin::File(path.clone()),
            code: script.source.clone(),
        },
        ConfigOrigin::Inline(loc) => {
            ScriptSource::inline(loc.file.clone(), loc.line, script.source.clone())
                .at_column(loc.column)
        }
    }
}

impl Pipeline {
    /// Build the script engine for `config` and compile every script, reporting the first failure.
    pub fn build(config: &ChannelConfig) -> Result<Self, BuildError> {
        let channel = config.name.clone();
        let engine = ScriptEngine::new(ScriptOptions {
            base_dir: crate::base_dir(config),
            tables: config
                .tables
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            fhir_maps: config.fhir_maps.clone(),
            log_content: config.log_content,
            channel_name: channel.clone(),
            ..ScriptOptions::default()
        })
        .map_err(|source| BuildError::Setup {
            channel: channel.clone(),
            source,
        })?;
        let compile =
            |stage: String, s: &Option<ScriptConfig>| -> Result<Option<Script>, BuildError> {
                s.as_ref()
                    .map(|s| {
                        engine
                            .compile(&source_of(s))
                            .map_err(|source| BuildError::Compile {
                                channel: channel.clone(),
                                stage: stage.clone(),
                                source: Box::new(source),
                            })
                    })
                    .transpose()
            };
        let filter = compile("filter".into(), &config.filter)?;
        let transform = compile("transform".into(), &config.transform)?;
        let mut destinations = Vec::new();
        for d in &config.destinations {
            destinations.push(DestinationScripts {
                name: d.name.clone(),
                filter: compile(format!("destinations[{}].filter", d.name), &d.filter)?,
                transform: compile(format!("destinations[{}].transform", d.name), &d.transform)?,
            });
        }
        let path = |p: &str| {
            Path::from_str(p).map_err(|e| BuildError::RulePath {
                channel: channel.clone(),
                path: p.to_owned(),
                reason: e.to_string(),
            })
        };
        let require = config
            .require
            .iter()
            .map(|p| Ok((p.clone(), path(p)?)))
            .collect::<Result<_, BuildError>>()?;
        let matches = config
            .matches
            .iter()
            .map(|m| Ok((m.path.clone(), path(&m.path)?, m.pattern.clone())))
            .collect::<Result<_, BuildError>>()?;
        Ok(Self {
            channel,
            engine,
            require,
            matches,
            filter,
            transform,
            destinations,
        })
    }

    /// The channel this pipeline belongs to.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Run one raw message through every stage; never panics, every failure becomes an outcome.
    pub fn run(&self, raw: &[u8], now: UnixMillis) -> Run {
        let mut stages = Vec::new();
        let mut stage = |name: &str, status: Status, detail: Option<String>| {
            stages.push(StageOutcome {
                at: now,
                stage: name.to_owned(),
                status,
                detail,
            });
        };
        let finish = |stages: Vec<StageOutcome>,
                      disposition: Disposition,
                      verdict: Verdict,
                      summary: Option<String>| Run {
            processed: Processed {
                at: now,
                stages,
                disposition,
            },
            verdict,
            summary,
        };

        let mut msg = match MessageBuf::parse(raw) {
            Ok(m) => m,
            Err(e) => {
                let error = format!("unparseable message: {e}");
                stage("parse", Status::Errored, Some(error.clone()));
                return finish(
                    stages,
                    Disposition::Errored {
                        error: error.clone(),
                    },
                    Verdict::Reject(error),
                    // The parser's reason may quote the bytes it could not read.
                    Some(String::from("parse: unparseable message")),
                );
            }
        };
        if let Some(error) = self.check_rules(&msg) {
            stage("rules", Status::Errored, Some(error.clone()));
            return finish(
                stages,
                Disposition::Errored {
                    error: error.clone(),
                },
                Verdict::Error(error.clone()),
                // A rule's reason names the rule and its pattern, never the value it found.
                Some(error),
            );
        }

        let mut ctx = Map::new();
        if let Some(filter) = &self.filter {
            match self.engine.run_filter(filter, &mut msg, &mut ctx) {
                Ok(FilterDecision::Keep) => stage("filter", Status::Received, None),
                Ok(FilterDecision::Stop(flow)) => {
                    return self.stopped(stages, "filter", flow, now);
                }
                Err(e) => return script_failure(stages, "filter", &e, now),
            }
        }

        // The channel transform's value is the default payload for every destination; destination
        // scripts keep seeing an HL7 message (the transformed one when the transform returned HL7).
        let mut channel_payload = None;
        if let Some(transform) = &self.transform {
            match self.engine.run_transform(transform, msg.clone(), &mut ctx) {
                Ok(TransformOutcome::Payload(Payload::Hl7(m))) => {
                    msg = m;
                    stage("transform", Status::Transformed, None);
                }
                Ok(TransformOutcome::Payload(p)) => {
                    channel_payload = Some(p);
                    stage("transform", Status::Transformed, None);
                }
                Ok(TransformOutcome::Stop(flow)) => {
                    return self.stopped(stages, "transform", flow, now);
                }
                Err(e) => return script_failure(stages, "transform", &e, now),
            }
        }

        let mut outputs = Vec::new();
        for d in &self.destinations {
            let mut dctx = ctx.clone();
            let mut dmsg = msg.clone();
            let filter_stage = format!("filter:{}", d.name);
            if let Some(filter) = &d.filter {
                match self.engine.run_filter(filter, &mut dmsg, &mut dctx) {
                    Ok(FilterDecision::Keep) => {}
                    Ok(FilterDecision::Stop(Flow::Filtered(reason))) => {
                        stage(&filter_stage, Status::Filtered, Some(reason));
                        continue;
                    }
                    Ok(FilterDecision::Stop(flow)) => {
                        return self.stopped(stages, &filter_stage, flow, now);
                    }
                    Err(e) => return script_failure(stages, &filter_stage, &e, now),
                }
            }
            let transform_stage = format!("transform:{}", d.name);
            let payload = match &d.transform {
                Some(t) => match self.engine.run_transform(t, dmsg, &mut dctx) {
                    Ok(TransformOutcome::Payload(p)) => {
                        stage(&transform_stage, Status::Transformed, None);
                        p
                    }
                    Ok(TransformOutcome::Stop(Flow::Filtered(reason))) => {
                        stage(&transform_stage, Status::Filtered, Some(reason));
                        continue;
                    }
                    Ok(TransformOutcome::Stop(flow)) => {
                        return self.stopped(stages, &transform_stage, flow, now);
                    }
                    Err(e) => return script_failure(stages, &transform_stage, &e, now),
                },
                None => channel_payload.clone().unwrap_or(Payload::Hl7(dmsg)),
            };
            match encode(&payload) {
                Ok((content_type, bytes)) => outputs.push(Output {
                    destination: d.name.clone(),
                    content_type: content_type.to_owned(),
                    payload: bytes,
                }),
                Err(e) => {
                    let summary = format!("{transform_stage}: output cannot be encoded");
                    let error = format!("{summary}: {e}");
                    stage(&transform_stage, Status::Errored, Some(error.clone()));
                    return finish(
                        stages,
                        Disposition::Errored {
                            error: error.clone(),
                        },
                        Verdict::Error(error),
                        Some(summary),
                    );
                }
            }
        }
        finish(stages, Disposition::Routed(outputs), Verdict::Accept, None)
    }

    /// The first failed `require` or `match` rule, as text naming the rule.
    fn check_rules(&self, msg: &MessageBuf) -> Option<String> {
        for (text, path) in &self.require {
            if msg.get(path).is_none_or(|v| v.is_empty()) {
                return Some(format!("rule require {text}: {text} is empty"));
            }
        }
        for (text, path, pattern) in &self.matches {
            let value = msg.get(path).unwrap_or_default();
            if !pattern.is_match(&value) {
                return Some(format!(
                    "rule match {text}: value does not match '{}'",
                    pattern.as_str()
                ));
            }
        }
        None
    }

    /// A script stopped the message with a flow function.
    fn stopped(
        &self,
        mut stages: Vec<StageOutcome>,
        stage: &str,
        flow: Flow,
        now: UnixMillis,
    ) -> Run {
        // The script's reason may quote the message, so the log summary leaves it out.
        let (status, disposition, verdict, summary) = match flow {
            Flow::Filtered(reason) => (
                Status::Filtered,
                Disposition::Filtered {
                    reason: reason.clone(),
                },
                Verdict::Accept,
                None,
            ),
            Flow::Reject(reason) => (
                Status::Errored,
                Disposition::Errored {
                    error: format!("{stage}: rejected: {reason}"),
                },
                Verdict::Reject(reason),
                Some(format!("{stage}: rejected by the script (reject())")),
            ),
            Flow::Fail(reason) => (
                Status::Errored,
                Disposition::Errored {
                    error: format!("{stage}: failed: {reason}"),
                },
                Verdict::Error(reason),
                Some(format!("{stage}: failed by the script (fail())")),
            ),
        };
        let detail = match &disposition {
            Disposition::Filtered { reason } => reason.clone(),
            Disposition::Errored { error } => error.clone(),
            Disposition::Routed(_) => String::new(),
        };
        stages.push(StageOutcome {
            at: now,
            stage: stage.to_owned(),
            status,
            detail: Some(detail),
        });
        Run {
            processed: Processed {
                at: now,
                stages,
                disposition,
            },
            verdict,
            summary,
        }
    }

    /// Names of the destinations, in configuration order.
    pub fn destination_names(&self) -> impl Iterator<Item = &str> {
        self.destinations.iter().map(|d| d.name.as_str())
    }
}

fn script_failure(
    mut stages: Vec<StageOutcome>,
    stage: &str,
    e: &ScriptError,
    now: UnixMillis,
) -> Run {
    let error = format!("{stage}: {e}");
    // File, line and kind locate the failure; the message (a thrown value, a type error quoting a
    // field) may carry patient data and stays in the record.
    let located = ScriptError {
        message: String::from("details in the message record"),
        ..e.clone()
    };
    stages.push(StageOutcome {
        at: now,
        stage: stage.to_owned(),
        status: Status::Errored,
        detail: Some(error.clone()),
    });
    Run {
        processed: Processed {
            at: now,
            stages,
            disposition: Disposition::Errored {
                error: error.clone(),
            },
        },
        verdict: Verdict::Error(error),
        summary: Some(format!("{stage}: {located}")),
    }
}

/// Content type and bytes of an outbound payload.
fn encode(payload: &Payload) -> Result<(&'static str, Vec<u8>), serde_json::Error> {
    Ok(match payload {
        Payload::Hl7(m) => (crate::CONTENT_HL7, m.encode()),
        Payload::Json(v) => {
            let fhir = v.get("resourceType").is_some();
            let ct = if fhir {
                crate::CONTENT_FHIR_JSON
            } else {
                crate::CONTENT_JSON
            };
            (ct, serde_json::to_vec_pretty(v)?)
        }
        Payload::Text(s) => (crate::CONTENT_TEXT, s.clone().into_bytes()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "Quillfeather";

    fn pipeline(yaml: &str) -> Pipeline {
        let config = junction_config::parse_channel(
            yaml,
            std::path::Path::new("channels/t.yaml"),
            std::path::Path::new("."),
        )
        .unwrap();
        Pipeline::build(&config).unwrap()
    }

    fn run(p: &Pipeline, sex: &str) -> Run {
        let raw = format!(
            "MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5.1\rPID|1||7||{NAME}^Ann||1980|{sex}\r"
        );
        p.run(raw.as_bytes(), 0)
    }

    fn channel(transform: &str) -> String {
        format!(
            "name: t\nsource:\n  mllp: {{ listen: \"127.0.0.1:1\" }}\n\
             match: {{ PID-8: '^(M|F)$' }}\ntransform: '{transform}'\n\
             destinations:\n  - name: d\n    file: {{ dir: out }}\n"
        )
    }

    /// The text payload each destination was given, by destination name.
    fn text_outputs(run: &Run) -> Vec<(String, String)> {
        let Disposition::Routed(outputs) = &run.processed.disposition else {
            panic!("not routed: {:?}", run.processed.disposition);
        };
        outputs
            .iter()
            .map(|o| {
                (
                    o.destination.clone(),
                    String::from_utf8(o.payload.clone()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn ctx_reaches_every_destination_and_each_destination_has_its_own_copy() {
        // The channel scripts fill ctx; `first` changes it in its filter and transform, which
        // `second` (run after it) must not see; `second` changes its own copy too.
        let p = pipeline(
            r#"name: t
source:
  mllp: { listen: "127.0.0.1:1" }
filter: 'ctx.seen = ["filter"]; true'
transform: |
  ctx.mrn = msg["PID-3-1"];
  ctx.seen.push("transform");
  msg
destinations:
  - name: first
    filter: 'ctx.mrn += "-first"; ctx.seen.push("first"); true'
    transform: 'ctx.extra = 1; ctx.mrn + " " + ctx.seen'
    file: { dir: out }
  - name: second
    transform: 'let out = ctx.mrn + " " + ctx.seen + " " + ("extra" in ctx); ctx.mrn = "x"; out'
    file: { dir: out }
  - name: third
    transform: 'ctx.mrn + " " + ctx.seen'
    file: { dir: out }
"#,
        );
        let run = run(&p, "F");
        assert_eq!(
            text_outputs(&run),
            [
                (
                    "first".into(),
                    r#"7-first ["filter", "transform", "first"]"#.into()
                ),
                ("second".into(), r#"7 ["filter", "transform"] false"#.into()),
                ("third".into(), r#"7 ["filter", "transform"]"#.into()),
            ]
        );
    }

    #[test]
    fn a_summary_locates_each_failure_without_the_message_content() {
        for transform in [
            r#"throw "no " + msg["PID-5-1"]"#,
            r#"fail("refused " + msg["PID-5-1"])"#,
            r#"reject("refused " + msg["PID-5-1"])"#,
        ] {
            let run = run(&pipeline(&channel(transform)), "F");
            let Disposition::Errored { error } = &run.processed.disposition else {
                panic!("{transform}: not errored");
            };
            assert!(error.contains(NAME), "the record keeps the reason: {error}");
            let summary = run.summary.unwrap();
            assert!(!summary.contains(NAME), "{transform}: {summary}");
            assert!(summary.starts_with("transform: "), "{summary}");
        }
    }

    #[test]
    fn a_script_failure_summary_names_file_line_and_kind() {
        let run = run(&pipeline(&channel(r#"throw "no " + msg["PID-5-1"]"#)), "F");
        let summary = run.summary.unwrap();
        assert!(
            summary.contains("channels/t.yaml (inline script):")
                && summary.contains("runtime error"),
            "{summary}"
        );
    }

    #[test]
    fn a_failed_rule_is_named_and_a_good_message_has_no_summary() {
        let p = pipeline(&channel("msg"));
        let failed = run(&p, "X");
        let summary = failed.summary.unwrap();
        assert!(summary.contains("rule match PID-8"), "{summary}");
        assert!(matches!(failed.verdict, Verdict::Error(r) if r.contains("PID-8")));
        let good = run(&p, "F");
        assert_eq!(good.verdict, Verdict::Accept);
        assert!(good.summary.is_none());
    }
}
