//! Reading [`Rep`]s straight from a parsed message, so callers never split HL7 text themselves.

use junction_hl7::escape::unescape;
use junction_hl7::{Delimiters, FieldPath, MessageBuf, Path};

use crate::rep::Rep;

/// Splits one raw (still escaped) field repetition on the message's separators and decodes each piece.
pub fn rep_from_raw(raw: &str, d: &Delimiters) -> Rep {
    if raw.is_empty() {
        return Rep::default();
    }
    let comps = raw
        .split(char::from(d.component))
        .map(|c| match d.subcomponent {
            Some(sub) => c
                .split(char::from(sub))
                .map(|s| unescape(s, d).into_owned())
                .collect(),
            None => vec![unescape(c, d).into_owned()],
        })
        .collect();
    Rep::new(comps)
}

/// The path of field `field` in the segment at 0-based `segment_index` (`OBX[3]-5`).
fn field_path(msg: &MessageBuf, segment_index: usize, field: usize) -> Option<Path> {
    let name = msg.segment_names().nth(segment_index)?;
    let occurrence = msg
        .segment_names()
        .take(segment_index + 1)
        .filter(|n| *n == name)
        .count();
    Path::new(name, occurrence, Some(FieldPath::field(field))).ok()
}

/// Every repetition of field `field` (1-based) of the segment at 0-based `segment_index`; empty when absent.
pub fn field_reps(msg: &MessageBuf, segment_index: usize, field: usize) -> Vec<Rep> {
    let Some(path) = field_path(msg, segment_index, field) else {
        return Vec::new();
    };
    let Some(raw) = msg.get_raw(&path).filter(|r| !r.is_empty()) else {
        return Vec::new();
    };
    let d = msg.delimiters();
    if path.segment() == "MSH" && field <= 2 {
        return vec![Rep::new(vec![vec![raw]])];
    }
    raw.split(char::from(d.repetition))
        .map(|r| rep_from_raw(r, d))
        .collect()
}

/// Every field of the segment at 0-based `segment_index`, split once: `fields[n]` holds the repetitions
/// of field n (index 0 is unused), so a caller reading many fields of one segment splits it only once.
pub fn segment_fields(msg: &MessageBuf, segment_index: usize) -> Vec<Vec<Rep>> {
    let Some(text) = msg.segment_text(segment_index) else {
        return Vec::new();
    };
    let d = msg.delimiters();
    let field_sep = char::from(d.field);
    let mut parts = text.split(field_sep);
    let name = parts.next().unwrap_or_default();
    let mut fields: Vec<Vec<Rep>> = vec![Vec::new()];
    if name == "MSH" || name == "FHS" || name == "BHS" {
        // MSH-1 is the field separator itself and MSH-2 the encoding characters: both taken as they are.
        fields.push(vec![Rep::new(vec![vec![field_sep.to_string()]])]);
        let encoding = parts.next().unwrap_or_default();
        fields.push(vec![Rep::new(vec![vec![encoding.to_owned()]])]);
    }
    for raw in parts {
        let reps = if raw.is_empty() {
            Vec::new()
        } else {
            raw.split(char::from(d.repetition))
                .map(|r| rep_from_raw(r, d))
                .collect()
        };
        fields.push(reps);
    }
    fields
}

/// The first repetition of field `field` of the segment at `segment_index` (empty when absent).
pub fn field_rep(msg: &MessageBuf, segment_index: usize, field: usize) -> Rep {
    field_reps(msg, segment_index, field)
        .into_iter()
        .next()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_repetitions_components_and_escapes() {
        let text = "MSH|^~\\&|APP|FAC|||20240101||ADT^A01|1|P|2.5\rPID|1||A1^^^H&1.2&ISO^MR~B\\S\\2^^^X||Doe^J\\T\\R\rOBX|1\rOBX|2|NM|x||5\r";
        let msg = MessageBuf::parse(text.as_bytes()).unwrap();
        let pid = msg.segment_indices("PID")[0];
        let ids = field_reps(&msg, pid, 3);
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0].sub(4, 2), "1.2");
        assert_eq!(
            ids[1].comp(1),
            "B^2",
            "an escaped separator is text, not a split"
        );
        assert_eq!(field_rep(&msg, pid, 5).comp(2), "J&R");
        let obx2 = msg.segment_indices("OBX")[1];
        assert_eq!(field_rep(&msg, obx2, 5).comp(1), "5");
        assert_eq!(field_rep(&msg, 0, 9).comp(2), "A01");
        assert_eq!(field_rep(&msg, 0, 2).comp(1), "^~\\&");
        assert!(field_reps(&msg, pid, 30).is_empty());
        assert!(field_reps(&msg, 99, 1).is_empty());
        for seg in [0, pid, obx2] {
            let fields = segment_fields(&msg, seg);
            for n in 1..fields.len() + 3 {
                let split = fields.get(n).cloned().unwrap_or_default();
                assert_eq!(split, field_reps(&msg, seg, n), "segment {seg} field {n}");
            }
        }
    }
}
