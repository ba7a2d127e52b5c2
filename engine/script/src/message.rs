//! The message as scripts see it: `msg[path]`, live segment and repetition handles, segment editing.
//!
//! All handles of one run share the message (`Arc<Mutex<..>>`, uncontended: one run is one thread).
//! Segment handles carry a stable id rather than an index, so inserting or removing other segments never
//! makes a handle point at the wrong segment.

use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use junction_hl7::{FieldPath, MessageBuf, Path};
use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, Map, INT};

type Res<T> = Result<T, Box<EvalAltResult>>;

fn err<T>(message: impl Into<String>) -> Res<T> {
    Err(message.into().into())
}

/// A segment's identity within one run, independent of its position.
#[derive(Debug, Clone, Copy)]
struct Slot {
    id: u64,
    name: [u8; 3],
}

#[derive(Debug)]
struct State {
    /// `None` once the run is over and the message went back to the caller.
    buf: Option<MessageBuf>,
    /// One slot per segment, in message order; built only when a script first asks for a handle.
    slots: Option<Vec<Slot>>,
    next_id: u64,
    /// Where the last handle was found: scripts walk segments in order, so the next is usually beside it.
    hint: usize,
    /// Writes so far, for [`State::check_growth`].
    writes: u64,
}

/// Longest a message may grow to as text through a script's writes.
const MAX_MESSAGE_TEXT: usize = 64 * 1024 * 1024;
/// A write of a value at least this long checks the message's size at once; smaller ones every
/// [`SIZE_CHECK_EVERY`] writes, so the check stays cheap on a large message.
const LARGE_WRITE: usize = 64 * 1024;
/// See [`LARGE_WRITE`].
const SIZE_CHECK_EVERY: u64 = 64;

impl State {
    fn buf(&mut self) -> Res<&mut MessageBuf> {
        match self.buf.as_mut() {
            Some(buf) => Ok(buf),
            None => err("this message handle outlived its message (do not keep handles in ctx)"),
        }
    }

    fn fresh_slot(&mut self, name: [u8; 3]) -> Slot {
        self.next_id += 1;
        Slot {
            id: self.next_id,
            name,
        }
    }

    /// Refuses a message grown past [`MAX_MESSAGE_TEXT`] by writes (each write's reach is bounded by the
    /// parser, but a loop of them is bounded only by the operation limit).
    fn check_growth(&mut self, value_len: usize) -> Res<()> {
        self.writes += 1;
        if value_len < LARGE_WRITE && !self.writes.is_multiple_of(SIZE_CHECK_EVERY) {
            return Ok(());
        }
        let len = self.buf()?.text_len();
        if len > MAX_MESSAGE_TEXT {
            return err(format!(
                "the message grew to {len} bytes, past the {MAX_MESSAGE_TEXT} a script may build"
            ));
        }
        Ok(())
    }

    /// Slots for the current segments; after a path write that created segments, the new ones get new ids.
    fn slots(&mut self) -> Res<&mut Vec<Slot>> {
        let count = self.buf()?.segment_count();
        // Segments are inserted and removed only through `insert_at`/`remove_at`, which keep the slots in
        // step, and path writes only append: the slots are current unless the count moved. Rebuilding
        // them at every handle access made a loop over a message's segments quadratic.
        if self.slots.as_ref().is_some_and(|s| s.len() == count) {
            return Ok(self.slots.get_or_insert_with(Vec::new));
        }
        let names = segment_names(self.buf()?);
        let old = self.slots.take().unwrap_or_default();
        let mut slots = Vec::with_capacity(names.len());
        let mut old_iter = old.into_iter().peekable();
        for name in names {
            // Path writes only ever add segments, so a greedy match of the old order keeps every old id.
            match old_iter.next_if(|s| s.name == name) {
                Some(slot) => slots.push(slot),
                None => {
                    let slot = self.fresh_slot(name);
                    slots.push(slot);
                }
            }
        }
        Ok(self.slots.insert(slots))
    }

    fn index_of(&mut self, id: u64) -> Res<usize> {
        let hint = self.hint;
        let slots = self.slots()?;
        let len = slots.len();
        let found = (hint..len)
            .chain(0..hint.min(len))
            .find(|&i| slots.get(i).is_some_and(|s| s.id == id));
        match found {
            Some(index) => {
                self.hint = index;
                Ok(index)
            }
            None => err("this segment was removed from the message"),
        }
    }
}

fn segment_names(buf: &MessageBuf) -> Vec<[u8; 3]> {
    buf.segment_names().map(name_bytes).collect()
}

/// Segment names are three ASCII characters (the parser guarantees it); anything else compares unequal.
fn name_bytes(name: &str) -> [u8; 3] {
    let mut out = [b'?'; 3];
    for (dst, src) in out.iter_mut().zip(name.bytes()) {
        *dst = src;
    }
    out
}

fn segment_name(buf: &MessageBuf, index: usize) -> String {
    buf.segment_names()
        .nth(index)
        .unwrap_or_default()
        .to_owned()
}

/// The message of one run, shared by `msg` and every handle derived from it.
#[derive(Debug, Clone)]
pub(crate) struct MessageHandle(Arc<Mutex<State>>);

impl MessageHandle {
    /// Wraps the message for one run.
    pub(crate) fn new(buf: MessageBuf) -> Self {
        Self(Arc::new(Mutex::new(State {
            buf: Some(buf),
            slots: None,
            next_id: 0,
            hint: 0,
            writes: 0,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic cannot happen while the lock is held (no user code runs under it), so poison is moot.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the message back at the end of a run; later use of any handle is an error, not a panic.
    pub(crate) fn take(&self) -> Option<MessageBuf> {
        self.lock().buf.take()
    }

    /// MSH-10, for log lines.
    pub(crate) fn control_id(&self) -> String {
        self.lock()
            .buf
            .as_ref()
            .map(|b| b.control_id().to_string())
            .unwrap_or_default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut MessageBuf) -> Res<T>) -> Res<T> {
        f(self.lock().buf()?)
    }

    fn segment(&self, id: u64) -> SegmentHandle {
        SegmentHandle {
            msg: self.clone(),
            id,
        }
    }
}

/// A live segment: reads and writes go to the message.
#[derive(Debug, Clone)]
pub(crate) struct SegmentHandle {
    msg: MessageHandle,
    id: u64,
}

impl SegmentHandle {
    /// Runs `f` with the message and this segment's current index.
    fn with<T>(&self, f: impl FnOnce(&mut MessageBuf, usize) -> Res<T>) -> Res<T> {
        let mut state = self.msg.lock();
        let index = state.index_of(self.id)?;
        f(state.buf()?, index)
    }

    /// Writes `value` at `fp` in this segment.
    fn set(&self, fp: &FieldPath, value: &Dynamic) -> Res<()> {
        let value = value_text(value);
        let mut state = self.msg.lock();
        let index = state.index_of(self.id)?;
        state
            .buf()?
            .set_in(index, fp, &value)
            .map_err(|e| e.to_string())?;
        state.check_growth(value.len())
    }

    /// The absolute path of `fp` in this segment (`OBX[2]-5`), for the message-level operations.
    fn path(&self, fp: FieldPath) -> Res<Path> {
        self.with(|buf, index| {
            let name = segment_name(buf, index);
            let occurrence = buf
                .segment_indices(&name)
                .iter()
                .position(|&i| i == index)
                .unwrap_or(0)
                + 1;
            Path::new(&name, occurrence, Some(fp)).map_err(|e| e.to_string().into())
        })
    }
}

/// One repetition of a field (`msg.repeats("PID-3")`), indexable by component path (`"1"`, `"4-1"`).
#[derive(Debug, Clone)]
pub(crate) struct RepetitionHandle {
    segment: SegmentHandle,
    field: usize,
    repetition: usize,
}

impl RepetitionHandle {
    /// `"4-2"` inside this repetition: component 4, subcomponent 2.
    fn field_path(&self, component_path: &str) -> Res<FieldPath> {
        let parsed = if component_path.is_empty() {
            None
        } else {
            Some(parse_field_path(component_path)?)
        };
        match parsed {
            Some(p) if p.repetition.is_some() || p.subcomponent.is_some() => err(format!(
                "'{component_path}' is not a component path (write \"1\" or \"4-2\")"
            )),
            _ => Ok(FieldPath {
                field: self.field,
                repetition: Some(self.repetition),
                component: parsed.map(|p| p.field),
                subcomponent: parsed.and_then(|p| p.component),
            }),
        }
    }

    fn get(&self, component_path: &str) -> Res<ImmutableString> {
        let fp = self.field_path(component_path)?;
        self.segment
            .with(|buf, index| Ok(buf.get_in(index, &fp).unwrap_or_default().into()))
    }

    fn set(&self, component_path: &str, value: Dynamic) -> Res<()> {
        let fp = self.field_path(component_path)?;
        self.segment.set(&fp, &value)
    }
}

fn parse_path(text: &str) -> Res<Path> {
    Path::from_str(text).map_err(|e| e.to_string().into())
}

fn parse_field_path(text: &str) -> Res<FieldPath> {
    FieldPath::from_str(text).map_err(|e| e.to_string().into())
}

/// What a write stores: strings as they are, numbers and booleans printed, `()` as empty.
fn value_text(value: &Dynamic) -> String {
    if value.is_unit() {
        String::new()
    } else {
        value.to_string()
    }
}

fn index(i: INT) -> Res<usize> {
    usize::try_from(i).or_else(|_| err(format!("segment index {i} is negative")))
}

/// Registers the `Message`, `Segment` and `Repetition` types and their functions.
pub(crate) fn register(engine: &mut Engine) {
    register_message(engine);
    register_segment(engine);
    register_repetition(engine);
}

fn register_message(engine: &mut Engine) {
    engine.register_type_with_name::<MessageHandle>("Message");
    engine.register_indexer_get(|m: &mut MessageHandle, path: &str| msg_get(m, path));
    engine.register_indexer_set(|m: &mut MessageHandle, path: &str, value: Dynamic| {
        let path = parse_path(path)?;
        let value = value_text(&value);
        let mut state = m.lock();
        state.buf()?.set(&path, &value).map_err(|e| e.to_string())?;
        state.check_growth(value.len())
    });
    engine.register_fn("get", |m: &mut MessageHandle, path: &str| msg_get(m, path));
    engine.register_fn("has", |m: &mut MessageHandle, path: &str| {
        let path = parse_path(path)?;
        m.with(|buf| Ok(buf.has(&path)))
    });
    engine.register_fn("is_null", |m: &mut MessageHandle, path: &str| {
        let path = parse_path(path)?;
        m.with(|buf| Ok(buf.is_null(&path)))
    });
    // remove() returns nothing, so a transform ending in `msg.remove(..);` still sends the message.
    engine.register_fn("remove", |m: &mut MessageHandle, path: &str| -> Res<()> {
        let path = parse_path(path)?;
        if path.field().is_some() {
            return m.with(|buf| {
                buf.remove(&path);
                Ok(())
            });
        }
        // Whole segments go through remove_at so that live handles stay right.
        let mut state = m.lock();
        let found = state
            .buf()?
            .segment_indices(path.segment())
            .get(path.occurrence() - 1)
            .copied();
        match found {
            Some(at) => remove_at(&mut state, at),
            None => Ok(()),
        }
    });
    engine.register_fn("count", |m: &mut MessageHandle, path: &str| {
        let path = parse_path(path)?;
        m.with(|buf| Ok(buf.count(&path) as INT))
    });
    engine.register_fn(
        "repeats",
        |m: &mut MessageHandle, path: &str| -> Res<Array> {
            let path = parse_path(path)?;
            let Some(fp) = path.field().copied() else {
                return err(format!(
                    "'{path}' names a segment; repeats() needs a field, e.g. \"PID-3\""
                ));
            };
            let Some(segment) = segments_named(m, path.segment())?
                .into_iter()
                .nth(path.occurrence() - 1)
            else {
                return Ok(Array::new());
            };
            repetitions(&segment, fp.field)
        },
    );
    engine.register_fn(
        "segments",
        |m: &mut MessageHandle, name: &str| -> Res<Array> {
            Ok(segments_named(m, name)?
                .into_iter()
                .map(Dynamic::from)
                .collect())
        },
    );
    engine.register_fn(
        "add_segment",
        |m: &mut MessageHandle, name: &str| -> Res<SegmentHandle> {
            let mut state = m.lock();
            let count = state.slots()?.len();
            insert_at(m, &mut state, count, name)
        },
    );
    engine.register_fn(
        "insert_segment",
        |m: &mut MessageHandle, at: INT, name: &str| -> Res<SegmentHandle> {
            let mut state = m.lock();
            insert_at(m, &mut state, index(at)?, name)
        },
    );
    engine.register_fn(
        "insert_segment",
        |m: &mut MessageHandle, after: SegmentHandle, name: &str| {
            let mut state = m.lock();
            let at = state.index_of(after.id)? + 1;
            insert_at(m, &mut state, at, name)
        },
    );
    engine.register_fn(
        "remove_segment",
        |m: &mut MessageHandle, at: INT| -> Res<()> {
            let mut state = m.lock();
            remove_at(&mut state, index(at)?)
        },
    );
    engine.register_fn(
        "remove_segment",
        |m: &mut MessageHandle, seg: SegmentHandle| -> Res<()> {
            let mut state = m.lock();
            let at = state.index_of(seg.id)?;
            remove_at(&mut state, at)
        },
    );
    engine.register_fn("msg_type", |m: &mut MessageHandle| {
        m.with(|buf| Ok(buf.message_type().to_string()))
    });
    engine.register_fn("type", |m: &mut MessageHandle| {
        m.with(|buf| Ok(buf.message_type().to_string()))
    });
    engine.register_fn("control_id", |m: &mut MessageHandle| {
        m.with(|buf| Ok(buf.control_id().to_string()))
    });
    engine.register_fn("to_hl7", |m: &mut MessageHandle| {
        m.with(|buf| Ok(buf.to_hl7_string()))
    });
    engine.register_fn("to_string", |m: &mut MessageHandle| {
        m.with(|buf| Ok(buf.to_hl7_string()))
    });
    engine.register_fn("to_json", |m: &mut MessageHandle| {
        m.with(|buf| Ok(json_to_dynamic(buf.to_json())))
    });
    engine.register_fn("parse_hl7", |text: &str| -> Res<MessageHandle> {
        MessageBuf::parse(text.as_bytes())
            .map(MessageHandle::new)
            .map_err(|e| e.to_string().into())
    });
}

fn msg_get(m: &MessageHandle, path: &str) -> Res<ImmutableString> {
    let path = parse_path(path)?;
    m.with(|buf| Ok(buf.get(&path).unwrap_or_default().into()))
}

fn segments_named(m: &MessageHandle, name: &str) -> Res<Vec<SegmentHandle>> {
    let mut state = m.lock();
    let indices = state.buf()?.segment_indices(name);
    let slots = state.slots()?;
    Ok(indices
        .into_iter()
        .filter_map(|i| slots.get(i))
        .map(|s| m.segment(s.id))
        .collect())
}

fn repetitions(segment: &SegmentHandle, field: usize) -> Res<Array> {
    let path = segment.path(FieldPath::field(field))?;
    let count = segment.msg.with(|buf| Ok(buf.count(&path)))?;
    Ok((1..=count)
        .map(|repetition| {
            Dynamic::from(RepetitionHandle {
                segment: segment.clone(),
                field,
                repetition,
            })
        })
        .collect())
}

fn insert_at(m: &MessageHandle, state: &mut State, at: usize, name: &str) -> Res<SegmentHandle> {
    let path = parse_path(name)?;
    if path.field().is_some() {
        return err(format!("'{name}' is not a segment name"));
    }
    if at == 0 {
        return err("cannot insert a segment before MSH");
    }
    state.slots()?;
    state
        .buf()?
        .insert_segment(at, path.segment())
        .map_err(|e| e.to_string())?;
    state.check_growth(0)?;
    let slot = state.fresh_slot(name_bytes(path.segment()));
    if let Some(slots) = state.slots.as_mut() {
        slots.insert(at.min(slots.len()), slot);
    }
    Ok(m.segment(slot.id))
}

fn remove_at(state: &mut State, at: usize) -> Res<()> {
    if at == 0 {
        return err("cannot remove MSH");
    }
    state.slots()?;
    if !state.buf()?.remove_segment(at) {
        return err(format!("there is no segment at index {at}"));
    }
    if let Some(slots) = state.slots.as_mut() {
        if at < slots.len() {
            slots.remove(at);
        }
    }
    Ok(())
}

fn register_segment(engine: &mut Engine) {
    engine.register_type_with_name::<SegmentHandle>("Segment");
    engine.register_indexer_get(|s: &mut SegmentHandle, path: &str| seg_get(s, path));
    engine.register_indexer_set(|s: &mut SegmentHandle, path: &str, value: Dynamic| {
        s.set(&parse_field_path(path)?, &value)
    });
    engine.register_fn("get", |s: &mut SegmentHandle, path: &str| seg_get(s, path));
    engine.register_fn("has", |s: &mut SegmentHandle, path: &str| {
        let path = s.path(parse_field_path(path)?)?;
        s.msg.with(|buf| Ok(buf.has(&path)))
    });
    engine.register_fn("is_null", |s: &mut SegmentHandle, path: &str| {
        let path = s.path(parse_field_path(path)?)?;
        s.msg.with(|buf| Ok(buf.is_null(&path)))
    });
    engine.register_fn("remove", |s: &mut SegmentHandle, path: &str| {
        let fp = parse_field_path(path)?;
        s.with(|buf, index| {
            buf.remove_in(index, &fp);
            Ok(())
        })
    });
    engine.register_fn("count", |s: &mut SegmentHandle, path: &str| {
        let path = s.path(parse_field_path(path)?)?;
        s.msg.with(|buf| Ok(buf.count(&path) as INT))
    });
    engine.register_fn("repeats", |s: &mut SegmentHandle, path: &str| {
        let fp = parse_field_path(path)?;
        repetitions(s, fp.field)
    });
    engine.register_fn("name", |s: &mut SegmentHandle| {
        s.with(|buf, index| Ok(segment_name(buf, index)))
    });
    engine.register_fn("to_string", |s: &mut SegmentHandle| {
        s.with(|buf, index| Ok(buf.segment_text(index).unwrap_or_default()))
    });
    engine.register_fn("index", |s: &mut SegmentHandle| {
        s.with(|_, index| Ok(index as INT))
    });
}

fn seg_get(s: &SegmentHandle, path: &str) -> Res<ImmutableString> {
    let fp = parse_field_path(path)?;
    s.with(|buf, index| Ok(buf.get_in(index, &fp).unwrap_or_default().into()))
}

fn register_repetition(engine: &mut Engine) {
    engine.register_type_with_name::<RepetitionHandle>("Repetition");
    engine.register_indexer_get(|r: &mut RepetitionHandle, path: &str| r.get(path));
    engine.register_indexer_set(|r: &mut RepetitionHandle, path: &str, value: Dynamic| {
        r.set(path, value)
    });
    engine.register_fn("get", |r: &mut RepetitionHandle, path: &str| r.get(path));
    engine.register_fn("to_string", |r: &mut RepetitionHandle| r.get(""));
}

/// JSON from the parser's `to_json` as a script value (maps and arrays the script can index).
fn json_to_dynamic(value: serde_json::Value) -> Dynamic {
    match value {
        serde_json::Value::Null => Dynamic::UNIT,
        serde_json::Value::Bool(b) => b.into(),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().map_or(Dynamic::UNIT, Dynamic::from_float),
        },
        serde_json::Value::String(s) => s.into(),
        serde_json::Value::Array(items) => {
            Dynamic::from_array(items.into_iter().map(json_to_dynamic).collect())
        }
        serde_json::Value::Object(entries) => Dynamic::from_map(
            entries
                .into_iter()
                .map(|(k, v)| (k.into(), json_to_dynamic(v)))
                .collect::<Map>(),
        ),
    }
}
