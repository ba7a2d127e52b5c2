//! Deterministic resource ids: the same message gives the same ids, so re-sending it updates in place
//! and references resolve within the Bundle (`fullUrl` = `urn:uuid:<id>`).

use uuid::Uuid;

/// The namespace of every Junction UUID v5; ids depend only on their parts, across hosts and versions.
/// Identical to `junction_script`'s `uuid5` namespace so ids made in scripts and in Rust agree.
pub const NAMESPACE: Uuid = Uuid::from_u128(0xa8c8350c_8f36_4708_844e_6718a8c675a7);

/// Joins parts; the ASCII unit separator cannot occur in HL7 text, so `["ab","c"]` and `["a","bc"]` differ.
const PART_SEPARATOR: char = '\u{1f}';

/// A UUID v5 of the parts (joined by U+001F) in [`NAMESPACE`].
pub fn uuid5<S: AsRef<str>>(parts: &[S]) -> String {
    let mut name = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            name.push(PART_SEPARATOR);
        }
        name.push_str(part.as_ref());
    }
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

/// The id of a resource known by a business identifier: type, sending facility, identifier system and value.
///
/// The facility (MSH-4) scopes identifiers without a system, so two hospitals' `MRN 1` never merge.
pub fn resource_id(resource_type: &str, facility: &str, system: &str, value: &str) -> String {
    uuid5(&[resource_type, facility, system, value])
}

/// `urn:uuid:<id>`, the `fullUrl` of an entry whose resource has not been stored yet.
pub fn full_url(id: &str) -> String {
    format!("urn:uuid:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_id_and_parts_never_run_together() {
        // Same vector as junction-script's uuid5 test (computed with Python's uuid.uuid5).
        assert_eq!(
            uuid5(&["Patient", "HOSP", "12345"]),
            "76f897d0-a872-5f5b-a20b-007ad3664c6e"
        );
        assert_eq!(
            resource_id("Patient", "HOSP", "urn:id:HOSP", "1"),
            resource_id("Patient", "HOSP", "urn:id:HOSP", "1")
        );
        assert_ne!(
            resource_id("Patient", "A", "s", "1"),
            resource_id("Patient", "B", "s", "1")
        );
        assert_ne!(uuid5(&["ab", "c"]), uuid5(&["a", "bc"]));
        assert_eq!(full_url("x"), "urn:uuid:x");
    }
}
