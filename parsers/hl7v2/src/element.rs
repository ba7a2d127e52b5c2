//! Navigation inside one field's raw text: repetitions, components, subcomponents.
//!
//! Shared by the zero-copy [`crate::Message`] and the owned [`crate::MessageBuf`], which both keep
//! field text exactly as it was on the wire (escaped) and decode only the value that is read.

use std::borrow::Cow;

use crate::delim::Delimiters;
use crate::escape::unescape;
use crate::path::FieldPath;

/// Byte range of the `n`th (0-based) piece of `s` split by `sep`; `None` when there are fewer.
pub(crate) fn piece_range(s: &[u8], sep: u8, n: usize) -> Option<std::ops::Range<usize>> {
    let mut start = 0;
    let mut seen = 0;
    for pos in memchr::memchr_iter(sep, s) {
        if seen == n {
            return Some(start..pos);
        }
        seen += 1;
        start = pos + 1;
    }
    (seen == n).then_some(start..s.len())
}

/// The `n`th (0-based) piece of `s` split by `sep`; `None` when there are fewer pieces.
pub(crate) fn nth_piece(s: &str, sep: u8, n: usize) -> Option<&str> {
    s.get(piece_range(s.as_bytes(), sep, n)?)
}

/// Number of pieces of `s` split by `sep`; an empty string has none.
pub(crate) fn count_pieces(s: &str, sep: u8) -> usize {
    if s.is_empty() {
        0
    } else {
        memchr::memchr_iter(sep, s.as_bytes()).count() + 1
    }
}

/// `s` with its `n`th piece (split by `sep`) replaced by `new`, adding empty pieces as needed.
///
/// When `new` is empty, trailing empty pieces are dropped (HL7 treats `a^^` as `a`).
pub(crate) fn replace_piece(s: &str, sep: u8, n: usize, new: &str) -> String {
    let sep_char = char::from(sep);
    let mut pieces: Vec<&str> = if s.is_empty() {
        Vec::new()
    } else {
        s.split(sep_char).collect()
    };
    if pieces.len() <= n {
        pieces.resize(n + 1, "");
    }
    if let Some(slot) = pieces.get_mut(n) {
        *slot = new;
    }
    if new.is_empty() {
        while pieces.last().is_some_and(|p| p.is_empty()) {
            pieces.pop();
        }
    }
    pieces.join(&sep_char.to_string())
}

/// `s` with its `n`th piece (split by `sep`) removed; `None` when there is no such piece.
pub(crate) fn delete_piece(s: &str, sep: u8, n: usize) -> Option<String> {
    let sep_char = char::from(sep);
    let mut pieces: Vec<&str> = s.split(sep_char).collect();
    if s.is_empty() || n >= pieces.len() {
        return None;
    }
    pieces.remove(n);
    Some(pieces.join(&sep_char.to_string()))
}

/// The raw text a field path addresses inside `field` (the raw text of the whole field).
///
/// A path with no repetition and no component addresses the whole field (all repetitions).
pub(crate) fn locate<'s>(field: &'s str, fp: &FieldPath, d: &Delimiters) -> Option<&'s str> {
    if fp.repetition.is_none() && fp.component.is_none() {
        return Some(field);
    }
    let rep = nth_piece(field, d.repetition, fp.rep0())?;
    let Some(c) = fp.component else {
        return Some(rep);
    };
    let comp = nth_piece(rep, d.component, c - 1)?;
    let Some(sc) = fp.subcomponent else {
        return Some(comp);
    };
    match d.subcomponent {
        Some(sub) => nth_piece(comp, sub, sc - 1),
        None => (sc == 1).then_some(comp),
    }
}

/// The value of an addressed element: decoded when it is a leaf, raw HL7 text when it still holds
/// separators (so that a structured value is never made ambiguous by decoding).
pub(crate) fn value<'s>(raw: &'s str, d: &Delimiters) -> Cow<'s, str> {
    let structured = raw
        .bytes()
        .any(|b| b == d.component || b == d.repetition || Some(b) == d.subcomponent);
    if structured {
        Cow::Borrowed(raw)
    } else {
        unescape(raw, d)
    }
}

/// `field` with the element at `fp` replaced by the already-escaped text `new`.
pub(crate) fn replace(field: &str, fp: &FieldPath, new: &str, d: &Delimiters) -> String {
    if fp.repetition.is_none() && fp.component.is_none() {
        return new.to_string();
    }
    let r = fp.rep0();
    let Some(c) = fp.component else {
        return replace_piece(field, d.repetition, r, new);
    };
    let rep = nth_piece(field, d.repetition, r).unwrap_or_default();
    let new_rep = match fp.subcomponent {
        None => replace_piece(rep, d.component, c - 1, new),
        Some(sc) => {
            let comp = nth_piece(rep, d.component, c - 1).unwrap_or_default();
            let new_comp = match d.subcomponent {
                Some(sub) => replace_piece(comp, sub, sc - 1, new),
                None => new.to_string(),
            };
            replace_piece(rep, d.component, c - 1, &new_comp)
        }
    };
    replace_piece(field, d.repetition, r, &new_rep)
}

/// Number of children of the element at `fp`: repetitions of a field, components of a
/// repetition, subcomponents of a component, and 1 or 0 for a subcomponent.
pub(crate) fn count(field: &str, fp: &FieldPath, d: &Delimiters) -> usize {
    let Some(raw) = locate(field, fp, d) else {
        return 0;
    };
    let sep = if fp.subcomponent.is_some() {
        None
    } else if fp.component.is_some() {
        d.subcomponent
    } else if fp.repetition.is_some() {
        Some(d.component)
    } else {
        Some(d.repetition)
    };
    match sep {
        Some(s) => count_pieces(raw, s),
        None => usize::from(!raw.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fp(s: &str) -> FieldPath {
        s.parse().unwrap()
    }

    #[test]
    fn pieces() {
        assert_eq!(nth_piece("a^b^c", b'^', 1), Some("b"));
        assert_eq!(nth_piece("a^b^c", b'^', 3), None);
        assert_eq!(nth_piece("", b'^', 0), Some(""));
        assert_eq!(nth_piece("a^", b'^', 1), Some(""));
        assert_eq!(count_pieces("a~b", b'~'), 2);
        assert_eq!(count_pieces("", b'~'), 0);
        assert_eq!(replace_piece("a", b'^', 2, "c"), "a^^c");
        assert_eq!(replace_piece("a^b^c", b'^', 2, ""), "a^b");
        assert_eq!(delete_piece("a~b~c", b'~', 1).unwrap(), "a~c");
    }

    #[test]
    fn locate_and_replace() {
        let d = Delimiters::default();
        let f = "1^^^H&X~2^^^M&Y";
        assert_eq!(locate(f, &fp("3"), &d), Some(f));
        assert_eq!(locate(f, &fp("3[2]"), &d), Some("2^^^M&Y"));
        assert_eq!(locate(f, &fp("3-4-2"), &d), Some("X"));
        assert_eq!(locate(f, &fp("3[2]-4-2"), &d), Some("Y"));
        assert_eq!(locate(f, &fp("3[3]-1"), &d), None);
        assert_eq!(replace(f, &fp("3[2]-4-3"), "Z", &d), "1^^^H&X~2^^^M&Y&Z");
        assert_eq!(replace("", &fp("3[2]-2"), "v", &d), "~^v");
        assert_eq!(count(f, &fp("3"), &d), 2);
        assert_eq!(count(f, &fp("3[1]"), &d), 4);
        assert_eq!(count(f, &fp("3-4"), &d), 2);
    }
}
