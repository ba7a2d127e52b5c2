//! The per-channel script engine: builds one Rhai engine, compiles scripts once, runs them per message.

use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, OnceLock};

use junction_fhir::VocabError;
use junction_hl7::MessageBuf;
use rhai::module_resolvers::FileModuleResolver;
use rhai::{Dynamic, Engine, EvalAltResult, Map, Position, Scope, AST};

use crate::error::{ErrorKind, ScriptError, ScriptOrigin};
use crate::flow::{self, FilterDecision, Flow, Payload, TransformOutcome};
use crate::helpers::{self, LogPolicy, RunScope};
use crate::json::to_json;
use crate::message::{self, MessageHandle};
use crate::options::ScriptOptions;
use crate::tables::{TableError, Tables};
use crate::{check, fhir_helpers};

/// The variable a script sees the inbound message as.
const MSG: &str = "msg";
/// The variable that carries values between the stages of one message.
const CTX: &str = "ctx";

/// A script's text and where it came from.
#[derive(Debug, Clone)]
pub struct ScriptSource {
    /// Where the text came from (used in every error).
    pub origin: ScriptOrigin,
    /// The Rhai source text.
    pub code: String,
}

impl ScriptSource {
    /// A script written inline in a channel file, starting at `line` of `file` (column 1).
    pub fn inline(file: impl Into<PathBuf>, line: usize, code: impl Into<String>) -> Self {
        Self {
            origin: ScriptOrigin::Inline {
                file: file.into(),
                line,
                column: 1,
            },
            code: code.into(),
        }
    }

    /// The same script placed at `column` of its first line (and indented so), for errors whose column
    /// an editor can jump to. Has no effect on a script file.
    pub fn at_column(mut self, column: usize) -> Self {
        if let ScriptOrigin::Inline { column: c, .. } = &mut self.origin {
            *c = column.max(1);
        }
        self
    }

    /// Reads a script file; a read failure is reported as a compile error of that file.
    pub fn from_file(path: impl AsRef<FsPath>) -> Result<Self, ScriptError> {
        let path = path.as_ref();
        let origin = ScriptOrigin::File(path.to_owned());
        match std::fs::read_to_string(path) {
            Ok(code) => Ok(Self { origin, code }),
            Err(e) => Err(ScriptError {
                origin,
                kind: ErrorKind::Compile,
                line: 0,
                column: 0,
                message: format!("cannot read script: {e}"),
            }),
        }
    }
}

/// A compiled script; cheap to clone and share between worker threads.
#[derive(Debug, Clone)]
pub struct Script {
    ast: Arc<AST>,
    origin: Arc<ScriptOrigin>,
}

impl Script {
    /// Where the script came from.
    pub fn origin(&self) -> &ScriptOrigin {
        &self.origin
    }
}

/// The engine could not be set up for a channel.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A lookup table failed to load.
    #[error(transparent)]
    Table(#[from] TableError),
    /// The FHIR vocabulary maps failed to load.
    #[error(transparent)]
    Vocab(#[from] VocabError),
}

/// One channel's script engine: shared by all of the channel's workers (`Send + Sync`).
pub struct ScriptEngine {
    engine: Engine,
    tables: Arc<Tables>,
}

impl std::fmt::Debug for ScriptEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptEngine").finish_non_exhaustive()
    }
}

impl ScriptEngine {
    /// Builds the engine: limits, module resolver, lookup tables, FHIR maps and the whole script API.
    pub fn new(options: ScriptOptions) -> Result<Self, SetupError> {
        let tables = Arc::new(Tables::load(&options.tables)?);
        let vocab = fhir_helpers::channel_vocab(options.fhir_maps.as_deref())?;
        let mut engine = Engine::new();
        engine.set_strict_variables(true);
        engine.disable_symbol("eval");
        let limits = options.limits;
        engine
            .set_max_operations(limits.max_operations)
            .set_max_call_levels(limits.max_call_levels)
            .set_max_expr_depths(limits.max_expr_depth, limits.max_function_expr_depth)
            .set_max_string_size(limits.max_string_size)
            .set_max_array_size(limits.max_array_size)
            .set_max_map_size(limits.max_map_size)
            .set_max_modules(limits.max_modules);
        engine.set_module_resolver(FileModuleResolver::new_with_path_and_extension(
            options.base_dir.join("scripts"),
            "rhai",
        ));
        let log = LogPolicy {
            channel: options.channel_name.as_str().into(),
            log_content: options.log_content,
        };
        flow::register(&mut engine);
        helpers::register(&mut engine, Arc::clone(&tables), log);
        message::register(&mut engine);
        fhir_helpers::register(&mut engine, vocab);
        Ok(Self { engine, tables })
    }

    /// Compiles a script once (imports resolved now, path literals and table names checked now).
    pub fn compile(&self, source: &ScriptSource) -> Result<Script, ScriptError> {
        let origin = &source.origin;
        let ast = self
            .engine
            .compile_into_self_contained(&Self::scope(), &source.code)
            .map_err(|e| {
                let kind = match *e {
                    EvalAltResult::ErrorParsing(..) => ErrorKind::Compile,
                    _ => classify(&e),
                };
                script_error(origin, kind, &e)
            })?;
        if let Some(found) = check::check(&ast, &self.tables) {
            return Err(at(origin, ErrorKind::Path, found.position, found.message));
        }
        Ok(Script {
            ast: Arc::new(ast),
            origin: Arc::new(origin.clone()),
        })
    }

    /// Runs a filter: `true` (or no value) keeps the message, `false` filters it; flow functions stop it.
    pub fn run_filter(
        &self,
        script: &Script,
        msg: &mut MessageBuf,
        ctx: &mut Map,
    ) -> Result<FilterDecision, ScriptError> {
        let handle = MessageHandle::new(std::mem::replace(msg, placeholder(msg)));
        let result = self.run(script, &handle, ctx);
        if let Some(buf) = handle.take() {
            *msg = buf;
        }
        let value = match result? {
            Ok(value) => value,
            Err(flow) => return Ok(FilterDecision::Stop(flow)),
        };
        if value.is_unit() {
            return Ok(FilterDecision::Keep);
        }
        match value.as_bool() {
            Ok(true) => Ok(FilterDecision::Keep),
            Ok(false) => Ok(FilterDecision::Stop(Flow::Filtered(String::from(
                "filter returned false",
            )))),
            Err(type_name) => Err(at(
                &script.origin,
                ErrorKind::Runtime,
                Position::NONE,
                format!("a filter must return true or false, not a value of type '{type_name}'"),
            )),
        }
    }

    /// Runs a transform: its value is the outbound payload (a message, a map/array as JSON, or a string).
    pub fn run_transform(
        &self,
        script: &Script,
        msg: MessageBuf,
        ctx: &mut Map,
    ) -> Result<TransformOutcome, ScriptError> {
        let handle = MessageHandle::new(msg);
        let value = match self.run(script, &handle, ctx)? {
            Ok(value) => value,
            Err(flow) => return Ok(TransformOutcome::Stop(flow)),
        };
        let bad = |message: String| at(&script.origin, ErrorKind::Runtime, Position::NONE, message);
        let payload = if value.is_unit() {
            Payload::Hl7(
                handle
                    .take()
                    .ok_or_else(|| bad(String::from("the message is no longer available")))?,
            )
        } else if let Some(returned) = value.read_lock::<MessageHandle>() {
            Payload::Hl7(
                returned.take().ok_or_else(|| {
                    bad(String::from("the returned message is no longer available"))
                })?,
            )
        } else if value.is_map() || value.is_array() {
            Payload::Json(to_json(&value).map_err(|e| bad(e.to_string()))?)
        } else if let Ok(text) = value.as_immutable_string_ref() {
            Payload::Text(text.as_str().to_owned())
        } else {
            return Err(bad(format!(
                "a transform must return the message, a map, an array or a string, not a value of type '{}'",
                value.type_name()
            )));
        };
        Ok(TransformOutcome::Payload(payload))
    }

    /// Runs one script against `handle`; `Ok(Err(flow))` when a flow function stopped it.
    fn run(
        &self,
        script: &Script,
        handle: &MessageHandle,
        ctx: &mut Map,
    ) -> Result<Result<Dynamic, Flow>, ScriptError> {
        let _run = RunScope::enter(&handle.control_id());
        let mut scope = Scope::new();
        scope.push(MSG, handle.clone());
        scope.push(CTX, std::mem::take(ctx));
        let result = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &script.ast);
        // ctx goes back to the caller even when the script failed, so earlier stages' values are not lost.
        if let Some(back) = scope.remove::<Map>(CTX) {
            *ctx = back;
        }
        match result {
            // Rhai checks sizes when a value is stored or passed on, not when it is the script's own
            // value, so a map grown entry by entry and returned as is must be checked here.
            Ok(value) => match self.engine.ensure_data_size_within_limits(&value) {
                Ok(()) => Ok(Ok(value)),
                Err(err) => Err(at(
                    &script.origin,
                    ErrorKind::Limit,
                    Position::NONE,
                    format!("the script's value is too large: {err}"),
                )),
            },
            Err(err) => match flow::flow_of(&err) {
                Some(flow) => Ok(Err(flow)),
                None => Err(script_error(&script.origin, classify(&err), &err)),
            },
        }
    }

    /// The variables every script can use; compiling with them lets strict mode catch any other name.
    fn scope() -> Scope<'static> {
        let mut scope = Scope::new();
        scope.push(MSG, ());
        scope.push(CTX, Map::new());
        scope
    }
}

/// A stand-in left in the caller's `&mut MessageBuf` while the script owns the real one.
fn placeholder(msg: &MessageBuf) -> MessageBuf {
    static EMPTY: OnceLock<Option<MessageBuf>> = OnceLock::new();
    EMPTY
        .get_or_init(|| MessageBuf::parse(b"MSH|^~\\&|").ok())
        .clone()
        // Unreachable in practice (the literal parses); cloning the real message is a correct fallback.
        .unwrap_or_else(|| msg.clone())
}

/// Limits are told apart so the runtime can say "script too slow/large" rather than "script bug".
fn classify(err: &EvalAltResult) -> ErrorKind {
    match err.unwrap_inner() {
        EvalAltResult::ErrorTooManyOperations(..)
        | EvalAltResult::ErrorDataTooLarge(..)
        | EvalAltResult::ErrorStackOverflow(..)
        | EvalAltResult::ErrorTooManyModules(..)
        | EvalAltResult::ErrorTooManyVariables(..)
        | EvalAltResult::ErrorParsing(rhai::ParseErrorType::ExprTooDeep, _) => ErrorKind::Limit,
        EvalAltResult::ErrorParsing(..) => ErrorKind::Compile,
        _ => ErrorKind::Runtime,
    }
}

/// Picks the position that points into the script itself: inside a function of the same script the
/// innermost position; inside an imported module the call site, with the module named in the message.
fn script_error(origin: &ScriptOrigin, kind: ErrorKind, err: &EvalAltResult) -> ScriptError {
    let mut position = err.position();
    let mut context = String::new();
    let mut current = err;
    loop {
        match current {
            EvalAltResult::ErrorInFunctionCall(name, source, inner, _) if source.is_empty() => {
                context.push_str(&format!("in function '{name}': "));
                if !inner.position().is_none() {
                    position = inner.position();
                }
                current = inner;
            }
            EvalAltResult::ErrorInFunctionCall(name, source, inner, _) => {
                context.push_str(&format!("in function '{name}' of module '{source}': "));
                // Positions inside the module are not in this script: keep the call site.
                return finish(origin, kind, position, context, inner);
            }
            EvalAltResult::ErrorInModule(name, inner, _) => {
                context.push_str(&format!("in module '{name}': "));
                return finish(origin, kind, position, context, inner);
            }
            _ => return finish(origin, kind, position, context, current),
        }
    }
}

fn finish(
    origin: &ScriptOrigin,
    kind: ErrorKind,
    position: Position,
    context: String,
    inner: &EvalAltResult,
) -> ScriptError {
    let inner_position = inner.position();
    let mut message = context;
    message.push_str(&describe(inner));
    // For an imported module, say where inside it the error is.
    if position != inner_position && !inner_position.is_none() {
        if let (Some(line), Some(col)) = (inner_position.line(), inner_position.position()) {
            message.push_str(&format!(" (at module line {line}:{col})"));
        }
    }
    at(origin, kind, position, message)
}

/// The error text without Rhai's trailing "(line x, position y)": the position is reported separately.
fn describe(err: &EvalAltResult) -> String {
    let text = err.to_string();
    let suffix = format!(" ({})", err.position());
    match text.strip_suffix(&suffix) {
        Some(stripped) if !err.position().is_none() => stripped.to_owned(),
        _ => text,
    }
}

fn at(origin: &ScriptOrigin, kind: ErrorKind, position: Position, message: String) -> ScriptError {
    ScriptError {
        origin: origin.clone(),
        kind,
        line: position.line().unwrap_or(0),
        column: position.position().unwrap_or(0),
        message,
    }
}
