//! Flow control from scripts: `filter_out`, `reject`, `fail`, and the outcomes the runtime acts on.

use junction_hl7::MessageBuf;
use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext};

/// A script stopped the message on purpose; carries the analyst's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// `filter_out(reason)`: drop the message, not an error (ACK AA; recorded as filtered).
    Filtered(String),
    /// `reject(reason)`: the sender gets AR; the message is recorded as rejected.
    Reject(String),
    /// `fail(reason)`: the sender gets AE; the message is recorded as errored.
    Fail(String),
}

/// What a filter script decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterDecision {
    /// The filter returned `true` (or nothing): the message goes on.
    Keep,
    /// The filter returned `false` (reported as `Flow::Filtered`) or called a flow function.
    Stop(Flow),
}

/// What a transform produced.
#[derive(Debug, Clone, PartialEq)]
pub enum TransformOutcome {
    /// The outbound payload.
    Payload(Payload),
    /// The transform called a flow function.
    Stop(Flow),
}

/// An outbound payload: what a destination sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// An HL7 v2 message (the script returned a message, or nothing).
    Hl7(MessageBuf),
    /// JSON (the script returned a map or an array).
    Json(serde_json::Value),
    /// Plain text (the script returned a string).
    Text(String),
}

/// Registers `filter_out`, `reject` and `fail`; each ends the script at once (`try`/`catch` cannot swallow it).
pub(crate) fn register(engine: &mut Engine) {
    fn stop(ctx: &NativeCallContext, flow: Flow) -> Box<EvalAltResult> {
        // ErrorTerminated is the one error Rhai's try/catch does not catch, so a flow call always takes effect.
        EvalAltResult::ErrorTerminated(Dynamic::from(flow), ctx.call_position()).into()
    }
    engine.register_fn(
        "filter_out",
        |ctx: NativeCallContext, reason: &str| -> Result<(), _> {
            Err(stop(&ctx, Flow::Filtered(reason.to_owned())))
        },
    );
    engine.register_fn("filter_out", |ctx: NativeCallContext| -> Result<(), _> {
        Err(stop(
            &ctx,
            Flow::Filtered(String::from("filtered by script")),
        ))
    });
    engine.register_fn(
        "reject",
        |ctx: NativeCallContext, reason: &str| -> Result<(), _> {
            Err(stop(&ctx, Flow::Reject(reason.to_owned())))
        },
    );
    engine.register_fn(
        "fail",
        |ctx: NativeCallContext, reason: &str| -> Result<(), _> {
            Err(stop(&ctx, Flow::Fail(reason.to_owned())))
        },
    );
}

/// The flow a run ended with, if it ended through a flow function (possibly inside a called function).
pub(crate) fn flow_of(err: &EvalAltResult) -> Option<Flow> {
    match err {
        EvalAltResult::ErrorTerminated(value, _) => value.read_lock::<Flow>().map(|f| f.clone()),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => flow_of(inner),
        _ => None,
    }
}
