//! FHIR helpers for scripts: HL7 v2 datatypes to FHIR R4 datatypes, vocabulary maps, Bundle entries.
//!
//! The conversions live in `junction-fhir` as pure functions over `serde_json::Value`; this file only
//! adapts them to Rhai. A script opens a context once per message, `let fx = fhir::context(msg, #{})`,
//! which snapshots the message and picks its time zone; every conversion is then a method of `fx`
//! taking a segment (an index from `fx.indices("OBX")` or a handle from `msg.segments("OBX")`) and a
//! field number. The script-facing list is in `scripts/fhir/README.md`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use junction_fhir::bundle::{self, Write};
use junction_fhir::datatypes as dt;
use junction_fhir::{hl7, ids, observation, time, Ctx, Rep, Vocab, VocabError};
use junction_hl7::datetime::{self, DateTimeError};
use junction_hl7::MessageBuf;
use rhai::{
    Array, Dynamic, Engine, EvalAltResult, FuncRegistration, Map, Module, NativeCallContext, INT,
};
use serde_json::Value;

use crate::json::to_json;

type Res<T> = Result<T, Box<EvalAltResult>>;

/// What an absent field reads as.
static EMPTY_REP: Rep = Rep::EMPTY;

/// One message as the FHIR helpers read it: a snapshot of the message, its zone and sending facility.
#[derive(Debug, Clone)]
pub(crate) struct FhirContext(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    buf: MessageBuf,
    /// Every segment split once into fields and repetitions: `segments[i][n]` is field n of segment i.
    segments: Vec<Vec<Vec<Rep>>>,
    vocab: Arc<Vocab>,
    zone: Option<i16>,
    facility: String,
}

impl FhirContext {
    fn ctx(&self) -> Ctx<'_> {
        Ctx::new(&self.0.vocab).with_zone(self.0.zone)
    }

    fn reps(&self, seg: usize, field: INT) -> &[Rep] {
        let field = usize::try_from(field).unwrap_or(usize::MAX);
        self.0
            .segments
            .get(seg)
            .and_then(|s| s.get(field))
            .map_or(&[], Vec::as_slice)
    }

    fn rep(&self, seg: usize, field: INT) -> &Rep {
        self.reps(seg, field).first().unwrap_or(&EMPTY_REP)
    }
}

/// A datatype conversion of one repetition.
type Convert = fn(&Ctx, &Rep) -> Option<Value>;

/// Registers `fx.<name>(seg, field)`: the conversion of every repetition of the field, each giving
/// none, one (`Option`) or several (`Vec`) values.
fn register_each<R: IntoIterator<Item = Value> + 'static>(
    engine: &mut Engine,
    name: &str,
    convert: fn(&Ctx, &Rep) -> R,
) {
    engine.register_fn(
        name,
        move |c: NativeCallContext, fx: &mut FhirContext, s: Dynamic, f: INT| -> Res<Array> {
            let cx = fx.ctx();
            Ok(all(fx
                .reps(seg_index(&c, s)?, f)
                .iter()
                .flat_map(|r| convert(&cx, r))))
        },
    );
}

/// Registers `fx.<name>(seg, field)`: the conversion of the field's first repetition.
fn register_first(engine: &mut Engine, name: &str, convert: Convert) {
    engine.register_fn(
        name,
        move |c: NativeCallContext, fx: &mut FhirContext, s: Dynamic, f: INT| -> Res<Dynamic> {
            Ok(opt(convert(&fx.ctx(), fx.rep(seg_index(&c, s)?, f))))
        },
    );
}

/// Registers `fx.<name>(seg, field)`: a time conversion of the field's first component in the
/// message's zone.
fn register_zoned(
    engine: &mut Engine,
    name: &str,
    convert: fn(&str, Option<i16>) -> Option<String>,
) {
    engine.register_fn(
        name,
        move |c: NativeCallContext, fx: &mut FhirContext, s: Dynamic, f: INT| -> Res<Dynamic> {
            Ok(opt_str(convert(
                fx.rep(seg_index(&c, s)?, f).comp(1),
                fx.0.zone,
            )))
        },
    );
}

/// The shipped maps, parsed once per process and shared by every channel without maps of its own.
fn shipped_vocab() -> Result<Arc<Vocab>, VocabError> {
    static SHIPPED: OnceLock<Arc<Vocab>> = OnceLock::new();
    if let Some(vocab) = SHIPPED.get() {
        return Ok(Arc::clone(vocab));
    }
    let vocab = Arc::new(Vocab::shipped()?);
    Ok(Arc::clone(SHIPPED.get_or_init(|| vocab)))
}

/// A channel's maps: the shipped ones, each replaced whole by a file of the same name in `overlay`.
pub(crate) fn channel_vocab(overlay: Option<&Path>) -> Result<Arc<Vocab>, VocabError> {
    let shipped = shipped_vocab()?;
    let Some(dir) = overlay else {
        return Ok(shipped);
    };
    let mut vocab = Vocab::clone(&shipped);
    vocab.overlay_dir(dir)?;
    Ok(Arc::new(vocab))
}

/// A segment argument: an index (`fx.indices("PID")`) or a segment handle (`msg.segments("PID")`).
fn seg_index(ctx: &NativeCallContext, seg: Dynamic) -> Res<usize> {
    let index = match seg.as_int() {
        Ok(i) => i,
        Err(_) => ctx.call_native_fn::<INT>("index", (seg,))?,
    };
    usize::try_from(index).map_err(|_| format!("segment index {index} is negative").into())
}

/// JSON from the conversions into script values (numbers stay integers when they are).
fn to_dynamic(value: Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => b.into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().map_or(Dynamic::UNIT, Dynamic::from_float),
        },
        Value::String(s) => s.into(),
        Value::Array(items) => Dynamic::from_array(items.into_iter().map(to_dynamic).collect()),
        Value::Object(entries) => Dynamic::from_map(
            entries
                .into_iter()
                .map(|(k, v)| (k.into(), to_dynamic(v)))
                .collect::<Map>(),
        ),
    }
}

fn opt(value: Option<Value>) -> Dynamic {
    value.map_or(Dynamic::UNIT, to_dynamic)
}

fn opt_str(value: Option<String>) -> Dynamic {
    value.map_or(Dynamic::UNIT, Dynamic::from)
}

fn all(values: impl Iterator<Item = Value>) -> Array {
    values.map(to_dynamic).collect()
}

fn json_of(value: &Dynamic) -> Res<Value> {
    to_json(value).map_err(|e| e.to_string().into())
}

/// Registers `fhir::context`, `fhir::prune`, the date helpers and the methods of a FHIR context;
/// every context reads the channel's `vocab`.
pub(crate) fn register(engine: &mut Engine, vocab: Arc<Vocab>) {
    engine.register_fn("to_fhir_date", |s: &str| {
        convert(s, "to_fhir_date", datetime::to_fhir_date)
    });
    engine.register_fn("to_fhir_datetime", |s: &str| {
        convert(s, "to_fhir_datetime", datetime::to_fhir_datetime)
    });
    engine.register_fn("to_fhir_instant", |s: &str| {
        convert(s, "to_fhir_instant", datetime::to_fhir_instant)
    });

    let mut module = Module::new();
    FuncRegistration::new("context").set_into_module(
        &mut module,
        move |ctx: NativeCallContext, msg: Dynamic, opts: Map| {
            context(&ctx, msg, &opts, Arc::clone(&vocab))
        },
    );
    FuncRegistration::new("prune").set_into_module(&mut module, |value: Dynamic| -> Res<Dynamic> {
        Ok(opt(junction_fhir::prune(json_of(&value)?)))
    });
    FuncRegistration::new("bundle").set_into_module(&mut module, |bundle: Map, items: Array| -> Res<Dynamic> {
        let mut pairs = Vec::with_capacity(items.len());
        for item in &items {
            let item = item.read_lock::<Map>().ok_or("fhir::bundle: each item must be #{ resource, write }")?;
            let write = item.get("write").map(Dynamic::to_string).unwrap_or_default();
            let write = Write::from_name(&write).ok_or_else(|| {
                format!("fhir::bundle: write '{write}' is not update, update-by-identifier, create-if-none-exist or message")
            })?;
            let resource = item.get("resource").ok_or("fhir::bundle: an item without a resource")?;
            pairs.push((json_of(resource)?, write));
        }
        Ok(opt(bundle::assemble(json_of(&Dynamic::from_map(bundle))?, pairs)))
    });
    engine.register_static_module("fhir", module.into());

    engine.register_type_with_name::<FhirContext>("FhirContext");
    register_message(engine);
    register_datatypes(engine);
    register_values(engine);
}

/// `fhir::context(msg, opts)`: snapshots the message; `opts.zone` (`"-05:00"`) is the zone for times
/// sent without one when MSH-7 has none either.
fn context(
    ctx: &NativeCallContext,
    msg: Dynamic,
    opts: &Map,
    vocab: Arc<Vocab>,
) -> Res<FhirContext> {
    let text = ctx.call_native_fn::<String>("to_hl7", (msg,))?;
    let buf = MessageBuf::parse(text.as_bytes()).map_err(|e| e.to_string())?;
    let configured =
        match opts.get("zone") {
            Some(z) if !z.is_unit() => {
                let z = z.to_string();
                Some(time::parse_zone(&z).ok_or_else(|| {
                    format!("fhir::context: zone '{z}' is not +hh:mm, -hhmm or Z")
                })?)
            }
            _ => None,
        };
    let segments: Vec<Vec<Vec<Rep>>> = (0..buf.segment_count())
        .map(|i| hl7::segment_fields(&buf, i))
        .collect();
    let first = |n: usize| {
        segments
            .first()
            .and_then(|s| s.get(n))
            .and_then(|r| r.first())
            .cloned()
            .unwrap_or_default()
    };
    let (msh4, msh7) = (first(4), first(7));
    let facility = if msh4.comp(1).is_empty() {
        msh4.comp(2)
    } else {
        msh4.comp(1)
    }
    .to_owned();
    let zone = time::zone_of(msh7.comp(1)).or(configured);
    Ok(FhirContext(Arc::new(Inner {
        buf,
        segments,
        vocab,
        zone,
        facility,
    })))
}

/// Message-level reads: segment indices and names, facility, ids, entries and the Bundle.
fn register_message(engine: &mut Engine) {
    engine.register_fn("indices", |fx: &mut FhirContext, name: &str| -> Array {
        fx.0.buf
            .segment_indices(name)
            .into_iter()
            .map(|i| Dynamic::from(i as INT))
            .collect()
    });
    engine.register_fn("segment_names", |fx: &mut FhirContext| -> Array {
        fx.0.buf
            .segment_names()
            .map(|n| Dynamic::from(n.to_owned()))
            .collect()
    });
    engine.register_get("facility", |fx: &mut FhirContext| fx.0.facility.clone());
    engine.register_get("facility_system", |fx: &mut FhirContext| {
        dt::hd_system(&fx.ctx(), fx.rep(0, 4)).unwrap_or_else(|| String::from("urn:id:unknown"))
    });
    engine.register_get("zone_known", |fx: &mut FhirContext| fx.0.zone.is_some());
    engine.register_fn(
        "resource_id",
        |fx: &mut FhirContext, rtype: &str, system: &str, value: &str| {
            ids::resource_id(rtype, &fx.0.facility, system, value)
        },
    );
}

/// Datatype conversions: `fx.<name>(segment, field)`; plural names return every repetition.
fn register_datatypes(engine: &mut Engine) {
    engine.register_fn(
        "text",
        |c: NativeCallContext, fx: &mut FhirContext, s: Dynamic, f: INT| -> Res<Dynamic> {
            let t = fx.rep(seg_index(&c, s)?, f).text();
            Ok(if t.is_empty() {
                Dynamic::UNIT
            } else {
                t.into()
            })
        },
    );
    engine.register_fn(
        "comp",
        |c: NativeCallContext, fx: &mut FhirContext, s: Dynamic, f: INT, n: INT| -> Res<Dynamic> {
            let rep = fx.rep(seg_index(&c, s)?, f);
            let t = usize::try_from(n).map_or("", |n| rep.comp(n));
            Ok(if t.is_empty() {
                Dynamic::UNIT
            } else {
                t.into()
            })
        },
    );
    register_each(engine, "identifiers", dt::identifier);
    register_each(engine, "names", dt::human_names);
    register_each(engine, "addresses", dt::address);
    register_each(engine, "cwes", dt::codeable_concept);
    register_each(engine, "practitioners", dt::practitioner);
    register_first(engine, "ei", dt::entity_identifier);
    register_first(engine, "cq", dt::composite_quantity);
    engine.register_fn(
        "eip",
        |c: NativeCallContext, fx: &mut FhirContext, s: Dynamic, f: INT, n: INT| -> Res<Array> {
            let cx = fx.ctx();
            let n = usize::try_from(n).unwrap_or(0);
            // One entry per repetition (`()` where it has no such part), so a script can pair the
            // placer and filler parts of the same repetition (SPM-3: one parent specimen each).
            Ok(fx
                .reps(seg_index(&c, s)?, f)
                .iter()
                .map(|r| opt(dt::eip_identifier(&cx, r, n)))
                .collect())
        },
    );
    register_first(engine, "cwe", dt::codeable_concept);
    register_first(engine, "practitioner", dt::practitioner);
    engine.register_fn(
        "telecoms",
        |c: NativeCallContext,
         fx: &mut FhirContext,
         s: Dynamic,
         f: INT,
         default_use: &str|
         -> Res<Array> {
            let cx = fx.ctx();
            Ok(all(fx
                .reps(seg_index(&c, s)?, f)
                .iter()
                .filter_map(|r| dt::contact_point(&cx, r, default_use))))
        },
    );
    engine.register_fn(
        "cwe",
        |c: NativeCallContext,
         fx: &mut FhirContext,
         s: Dynamic,
         f: INT,
         map: &str|
         -> Res<Dynamic> {
            check_map(fx, map)?;
            Ok(opt(dt::codeable_concept_mapped(
                &fx.ctx(),
                fx.rep(seg_index(&c, s)?, f),
                Some(map),
            )))
        },
    );
    engine.register_fn(
        "date",
        |c: NativeCallContext, fx: &mut FhirContext, s: Dynamic, f: INT| -> Res<Dynamic> {
            Ok(opt_str(time::date(fx.rep(seg_index(&c, s)?, f).comp(1))))
        },
    );
    register_zoned(engine, "datetime", time::datetime);
    register_zoned(engine, "instant", time::instant);
    engine.register_fn(
        "period",
        |c: NativeCallContext,
         fx: &mut FhirContext,
         s: Dynamic,
         start: INT,
         end: INT|
         -> Res<Dynamic> {
            let i = seg_index(&c, s)?;
            let (start, end) = (fx.rep(i, start), fx.rep(i, end));
            Ok(opt(dt::period(&fx.ctx(), start.comp(1), end.comp(1))))
        },
    );
}

/// Vocabulary maps, values given as text, and observation values.
fn register_values(engine: &mut Engine) {
    engine.register_fn("datetime_of", |fx: &mut FhirContext, text: &str| {
        opt_str(time::datetime(text, fx.0.zone))
    });
    engine.register_fn("instant_of", |fx: &mut FhirContext, text: &str| {
        opt_str(time::instant(text, fx.0.zone))
    });
    engine.register_fn("base64", |_: &mut FhirContext, text: &str| {
        observation::base64(text.as_bytes())
    });
    engine.register_fn(
        "map",
        |fx: &mut FhirContext, map: &str, code: &str| -> Res<Dynamic> {
            check_map(fx, map)?;
            Ok(opt_str(
                fx.0.vocab.code(map, code.trim()).map(str::to_owned),
            ))
        },
    );
    engine.register_fn(
        "coding",
        |fx: &mut FhirContext, map: &str, code: &str| -> Res<Dynamic> {
            check_map(fx, map)?;
            Ok(opt(fx.0.vocab.get(map, code.trim()).map(|c| c.coding())))
        },
    );
    engine.register_fn("system_uri", |fx: &mut FhirContext, name: &str| {
        opt_str(dt::coding_system_uri(&fx.ctx(), name))
    });
    engine.register_fn(
        "observation_base",
        |c: NativeCallContext, fx: &mut FhirContext, s: Dynamic| -> Res<Dynamic> {
            let i = seg_index(&c, s)?;
            Ok(opt(observation::base(&fx.ctx(), |n| {
                fx.reps(i, INT::try_from(n).unwrap_or(0)).to_vec()
            })))
        },
    );
    engine.register_fn(
        "obx_value",
        |c: NativeCallContext, fx: &mut FhirContext, s: Dynamic| -> Res<Dynamic> {
            let i = seg_index(&c, s)?;
            let kind = fx.rep(i, 2).comp(1).to_owned();
            Ok(opt(observation::value(
                &fx.ctx(),
                &kind,
                fx.reps(i, 5),
                fx.rep(i, 6),
            )))
        },
    );
    engine.register_fn(
        "quantity",
        |c: NativeCallContext,
         fx: &mut FhirContext,
         s: Dynamic,
         f: INT,
         units: INT|
         -> Res<Dynamic> {
            let i = seg_index(&c, s)?;
            Ok(opt(dt::quantity(
                &fx.ctx(),
                fx.rep(i, f).comp(1),
                fx.rep(i, units),
            )))
        },
    );
    engine.register_fn(
        "reference_range",
        |c: NativeCallContext,
         fx: &mut FhirContext,
         s: Dynamic,
         f: INT,
         units: INT|
         -> Res<Dynamic> {
            let i = seg_index(&c, s)?;
            Ok(opt(observation::reference_range(
                &fx.ctx(),
                &fx.rep(i, f).text(),
                fx.rep(i, units),
            )))
        },
    );
    engine.register_fn(
        "attachment",
        |c: NativeCallContext, fx: &mut FhirContext, s: Dynamic, f: INT| -> Res<Dynamic> {
            Ok(opt(observation::attachment(fx.rep(seg_index(&c, s)?, f))))
        },
    );
}

/// A misspelt map name is an error, not a silent "unmapped".
fn check_map(fx: &FhirContext, map: &str) -> Res<()> {
    if fx.0.vocab.contains(map) {
        Ok(())
    } else {
        Err(format!("no FHIR vocabulary map named '{map}'").into())
    }
}

/// Empty input gives `()` so a map entry built from an absent field is left out of the JSON;
/// invalid input is an error, because sending a wrong date is worse than holding the message.
fn convert(
    value: &str,
    helper: &str,
    f: impl FnOnce(&str) -> Result<String, DateTimeError>,
) -> Res<Dynamic> {
    if value.is_empty() {
        return Ok(Dynamic::UNIT);
    }
    f(value)
        .map(Dynamic::from)
        .map_err(|e| format!("{helper}: {}", describe(&e)).into())
}

/// The reason without the value itself: a date of birth is patient data and errors end up in logs.
fn describe(err: &DateTimeError) -> String {
    match err {
        DateTimeError::Format(_) => {
            String::from("not an HL7 date/time (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])")
        }
        DateTimeError::OutOfRange { part, .. } => format!("{part} out of range"),
        DateTimeError::NotAnInstant(_) => {
            String::from("a FHIR instant needs a date, a time and a time zone")
        }
        _ => String::from("invalid date/time"),
    }
}
