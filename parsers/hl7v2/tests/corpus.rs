//! Conformance over the shared public corpus (`/work/shared/corpus`), when it is present.
//!
//! Every listed file is split with `split_batch` and each message parsed with `MessageBuf`
//! (and `Message` when UTF-8). Well-formed files must parse and round-trip byte-exact modulo
//! terminator normalisation; malformed ones must give an error that says where (see [`expect`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use junction_hl7::{split_batch, Message, MessageBuf};

/// Files that are not valid HL7 although the corpus does not mark them negative, with the reason.
const KNOWN_BROKEN: &[(&str, &str)] = &[
    ("crs4__hl7apy/extracted__tests__test_core.py__L1177.hl7", "MSH-2 empty: no encoding characters"),
    ("crs4__hl7apy/extracted__tests__test_parser.py__L184.hl7", "MSH-2 empty: no encoding characters"),
    ("crs4__hl7apy/extracted__tests__test_parser.py__L215.hl7", "MSH-2 `^&&^` declares one character for two roles"),
    ("crs4__hl7apy/extracted__tests__test_parser.py__L218.hl7", "MSH-2 declares one character for two roles"),
    ("hapifhir__hapi-hl7v2/extracted__hapi-test__src__test__java__ca__uhn__hl7v2__protocol__impl__ProcessorImplTest.java__L138.hl7", "MSH-1 and MSH-2 are all `{`: no encoding characters"),
    ("hapifhir__hapi-hl7v2/extracted__hapi-test__src__test__java__ca__uhn__hl7v2__llp__ExtendedMinLowerLayerProtocolTest.java__L116.hl7", "MSH-2 holds U+FFFD, not an ASCII delimiter"),
    ("hapifhir__hapi-hl7v2/extracted__hapi-osgi-test__src__test__java__ca__uhn__hl7v2__parser__tests__NewPipeParserTest.java__L415.hl7", "segment named `I` (test of a bad segment id)"),
    ("hapifhir__hapi-hl7v2/extracted__hapi-test__src__test__java__ca__uhn__hl7v2__parser__NewPipeParserTest.java__L694.hl7", "raw CRs inside OBX-5 split the segment (`String||...` is not a segment)"),
    ("hapifhir__hapi-hl7v2/extracted__hapi-testpanel__src__test__java__ca__uhn__hl7v2__testpanel__model__msg__Hl7V2MessageCollectionTest.java__L177.hl7", "`#  ` line between messages (editor comment test)"),
    ("hapifhir__hapi-hl7v2/extracted__hapi-testpanel__src__test__java__ca__uhn__hl7v2__testpanel__model__msg__Hl7V2MessageCollectionTest.java__L185.hl7", "`# B` line between messages (editor comment test)"),
    ("hapifhir__hapi-hl7v2/extracted__hapi-testpanel__src__test__java__ca__uhn__hl7v2__testpanel__model__msg__Hl7V2MessageCollectionTest.java__L223.hl7", "`# T` line between messages (editor comment test)"),
    ("hapifhir__hapi-hl7v2/extracted__hapi-testpanel__src__test__java__ca__uhn__hl7v2__testpanel__model__msg__Hl7V2MessageCollectionTest.java__L431.hl7", "`AAAA` line: not a segment"),
    ("hapifhir__hapi-hl7v2/extracted__hapi-testpanel__src__test__java__ca__uhn__hl7v2__testpanel__model__msg__Hl7V2MessageCollectionTest.java__L481.hl7", "Java source code lines after the message"),
    ("hapifhir__hapi-hl7v2/hapi-osgi-test__src__test__resources__ca__uhn__hl7v2__util__messages.txt", "a text file of messages with `/* */` comments between them"),
    ("johnpaulett__python-hl7/extracted__tests__samples.py__L89.hl7", "python-hl7 bad batch sample: BTS without BHS"),
    ("johnpaulett__python-hl7/extracted__tests__samples.py__L102.hl7", "python-hl7 bad batch sample: BHS followed by segments with no MSH"),
    ("johnpaulett__python-hl7/extracted__tests__samples.py__L115.hl7", "python-hl7 bad batch sample: BHS nested inside a message"),
    ("johnpaulett__python-hl7/extracted__tests__samples.py__L242.hl7", "python-hl7 bad file sample: BTS without BHS"),
    ("johnpaulett__python-hl7/extracted__tests__samples.py__L257.hl7", "python-hl7 bad file sample: BHS followed by segments with no MSH"),
    ("johnpaulett__python-hl7/extracted__tests__samples.py__L272.hl7", "python-hl7 bad file sample: BHS nested inside a message"),
    ("johnpaulett__python-hl7/extracted__tests__samples.py__L289.hl7", "python-hl7 bad file sample: FHS nested inside a message"),
    ("johnpaulett__python-hl7/extracted__tests__samples.py__L306.hl7", "python-hl7 bad file sample: FHS followed by segments with no MSH"),
    ("johnpaulett__python-hl7/extracted__tests__test_client.py__L205.hl7", "`bar` line: not a segment"),
    ("johnpaulett__python-hl7/extracted__tests__test_client.py__L210.hl7", "`bar` line: not a segment"),
    ("johnpaulett__python-hl7/extracted__tests__test_client.py__L215.hl7", "`bar` line: not a segment"),
    ("microsoft__FHIR-Converter/extracted__src__Microsoft.Health.Fhir.Liquid.Converter.UnitTests__Parsers__Hl7v2DataParserTests.cs__L39.hl7", "a segment with no name (`||E|...`, test of a bad segment)"),
    ("nHapiNET__nHapi/extracted__tests__NHapi.Base.NUnit__EncodingDetectorTests.cs__L26.hl7", "`UNKNOWN|` line: 7-character segment id"),
    ("nHapiNET__nHapi/extracted__tests__NHapi.Base.NUnit__PreParser__Er7Tests.cs__L50.hl7", "`G` line: not a segment"),
    ("nHapiNET__nHapi/extracted__tests__NHapi.Base.NUnit__PreParser__Er7Tests.cs__L51.hl7", "`GR` line: not a segment"),
    ("nHapiNET__nHapi/tests__NHapi.NUnit__TestData__BadInputs__LegacyPipeParser__EncodingNotSupportedException__aoor1", "empty file"),
];

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

/// The file as the parser is expected to re-emit it: BOM and leading whitespace dropped, lines
/// split on CR, LF or CRLF, blank (or whitespace-only) lines dropped, each line terminated by CR.
fn normalise(bytes: &[u8]) -> Vec<Vec<u8>> {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    b[start..]
        .split(|&c| c == b'\r' || c == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(|l| {
            let mut v = l.to_vec();
            v.push(b'\r');
            v
        })
        .collect()
}

/// What the parser must do with a corpus file, judged from its MANIFEST notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Parse and round-trip.
    WellFormed,
    /// Give an error.
    Malformed,
}

/// `negative_or_edge_test(source-named: ...)` only says that the source called the file or its
/// test bad, invalid, missing, error or negative. Some are malformed HL7: nHapi's fuzzed
/// `BadInputs` (`badinput`), files that do not start with a header, files with segment ids that
/// are not three letters/digits, and escape fixtures (field text, not a message). The others are
/// edge cases of well-formed messages, named for their content: prime-reportstream's
/// `missing`/`error`/`negative`/`invalid` files lack data or hold odd values for the FHIR mapping,
/// and rethinkhealth's `invalid-trailing-empty-fields` and `invalid-wrong-version` break a style
/// rule and a version table, not the syntax. Those must parse like any other file.
fn expect(notes: &str) -> Expect {
    let structurally_bad = [
        "does_not_start_with_MSH",
        "source-named: badinput",
        "nonstandard_segment_ids=",
    ]
    .iter()
    .any(|marker| notes.contains(marker));
    if notes.contains("escape-fixture")
        || (notes.contains("negative_or_edge_test") && structurally_bad)
    {
        Expect::Malformed
    } else {
        Expect::WellFormed
    }
}

fn check(bytes: &[u8]) -> Result<usize, String> {
    let batch = split_batch(bytes).map_err(|e| format!("split_batch: {e}"))?;
    let body: Vec<u8> = normalise(bytes)
        .into_iter()
        .filter(|l| !matches!(l.get(..3), Some(b"FHS" | b"BHS" | b"BTS" | b"FTS")))
        .flatten()
        .collect();
    if body != batch.messages.concat() {
        return Err("split_batch lost or changed bytes".into());
    }
    for (i, msg) in batch.messages.iter().enumerate() {
        let owned = MessageBuf::parse(msg).map_err(|e| format!("message {}: {e}", i + 1))?;
        if &owned.encode() != msg {
            return Err(format!("message {}: MessageBuf round trip differs", i + 1));
        }
        if std::str::from_utf8(msg).is_ok() {
            let view =
                Message::parse(msg).map_err(|e| format!("message {} (zero-copy): {e}", i + 1))?;
            if &view.to_owned().encode() != msg {
                return Err(format!("message {}: Message round trip differs", i + 1));
            }
        }
    }
    Ok(batch.messages.len())
}

#[test]
fn corpus_round_trips() {
    let dir = corpus_dir();
    let Ok(manifest) = std::fs::read_to_string(dir.join("MANIFEST.tsv")) else {
        println!(
            "corpus not found at {}: skipping the conformance test",
            dir.display()
        );
        return;
    };
    let known: BTreeMap<&str, &str> = KNOWN_BROKEN.iter().copied().collect();
    let (mut checked, mut passed, mut messages, mut refused, mut edge) = (0, 0, 0, 0, 0);
    let mut failures = Vec::new();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (Some(file), Some(notes)) = (cols.first(), cols.get(8)) else {
            continue;
        };
        let bytes = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let result = check(&bytes);
        checked += 1;
        match (expect(notes), result) {
            (Expect::Malformed, Err(e)) if e.contains("byte") || e.contains("segment") => {
                refused += 1
            }
            (Expect::Malformed, Err(e)) => {
                failures.push(format!("{file}: error does not say where: {e}"))
            }
            (Expect::Malformed, Ok(n)) => failures.push(format!(
                "{file}: marked malformed but {n} message(s) parsed and round-tripped"
            )),
            (Expect::WellFormed, Ok(n)) => {
                passed += 1;
                messages += n;
                edge += usize::from(notes.contains("negative_or_edge_test"));
            }
            (Expect::WellFormed, Err(e)) if known.contains_key(file) => {
                println!("known broken: {file}: {e}")
            }
            (Expect::WellFormed, Err(e)) => failures.push(format!("{file}: {e}")),
        }
    }
    println!(
        "corpus: {checked} files checked, {passed} parsed and round-tripped ({messages} messages, \
         {edge} of them well-formed edge cases marked negative), {refused} malformed files refused \
         with a position, {} known broken",
        known.len()
    );
    assert!(
        failures.is_empty(),
        "{} corpus failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
