use super::*;
use futures::StreamExt;
use tokio_util::codec::FramedRead;

const MSG_A: &[u8] = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1\r";
const MSG_B: &[u8] = b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|2|P|2.5\rOBX|1\r";

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    MllpCodec::new().encode(payload, &mut out).unwrap();
    out.to_vec()
}

/// Feeds `chunks` one at a time, as successive reads would, and collects every result.
fn feed(codec: &mut MllpCodec, chunks: &[&[u8]]) -> Vec<Result<Frame, String>> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => out.push(Ok(f)),
                Ok(None) => break,
                Err(e) => out.push(Err(e.to_string())),
            }
        }
    }
    match codec.decode_eof(&mut buf) {
        Ok(Some(f)) => out.push(Ok(f)),
        Ok(None) => {}
        Err(e) => out.push(Err(e.to_string())),
    }
    out
}

fn payloads(results: &[Result<Frame, String>]) -> Vec<Vec<u8>> {
    results
        .iter()
        .map(|r| r.as_ref().unwrap().payload.to_vec())
        .collect()
}

#[test]
fn one_frame_in_one_read() {
    let out = feed(&mut MllpCodec::new(), &[&framed(MSG_A)]);
    assert_eq!(payloads(&out), vec![MSG_A.to_vec()]);
    assert_eq!(out[0].as_ref().unwrap().skipped, 0);
}

#[test]
fn split_reads_at_every_byte_boundary() {
    let mut stream = b"junk".to_vec();
    stream.extend(framed(MSG_A));
    stream.extend(b"\n\n");
    stream.extend(framed(MSG_B));
    for split in 0..=stream.len() {
        let (a, b) = stream.split_at(split);
        let out = feed(&mut MllpCodec::new(), &[a, b]);
        assert_eq!(
            payloads(&out),
            vec![MSG_A.to_vec(), MSG_B.to_vec()],
            "split at {split}"
        );
        assert_eq!(out[0].as_ref().unwrap().skipped, 4, "split at {split}");
        assert_eq!(out[1].as_ref().unwrap().skipped, 2, "split at {split}");
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    let out = feed(&mut MllpCodec::new(), &bytes);
    assert_eq!(payloads(&out), vec![MSG_A.to_vec(), MSG_B.to_vec()]);
}

#[test]
fn several_frames_in_one_read() {
    let mut stream = Vec::new();
    for _ in 0..3 {
        stream.extend(framed(MSG_A));
        stream.extend(framed(MSG_B));
    }
    let out = feed(&mut MllpCodec::new(), &[&stream]);
    assert_eq!(out.len(), 6);
    assert_eq!(payloads(&out)[5], MSG_B.to_vec());
    assert!(out.iter().all(|r| r.as_ref().unwrap().skipped == 0));
}

#[test]
fn junk_between_frames_is_skipped_and_counted() {
    let mut codec = MllpCodec::new();
    let mut stream = framed(MSG_A);
    stream.extend(b"GET / HTTP/1.1\r\n\r\n");
    stream.extend(framed(MSG_B));
    stream.extend(b"trailing");
    let out = feed(&mut codec, &[&stream]);
    assert_eq!(payloads(&out), vec![MSG_A.to_vec(), MSG_B.to_vec()]);
    assert_eq!(out[1].as_ref().unwrap().skipped, 18);
    assert_eq!(codec.take_skipped(), 8, "junk before EOF is reported too");
    assert_eq!(codec.take_skipped(), 0);
}

#[test]
fn missing_trailer_is_accepted() {
    let stream = [
        b"\x0bone\x1c".as_slice(),
        b"\x0btwo\x1c\x0d",
        b"\x0bthree\x1c",
    ]
    .concat();
    let out = feed(&mut MllpCodec::new(), &[&stream]);
    assert_eq!(
        payloads(&out),
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
    assert!(out.iter().all(|r| r.as_ref().unwrap().skipped == 0));
}

#[test]
fn restarted_frame_drops_the_abandoned_part() {
    let out = feed(&mut MllpCodec::new(), &[b"\x0bpartial\x0bwhole\x1c\x0d"]);
    assert_eq!(payloads(&out), vec![b"whole".to_vec()]);
    assert_eq!(out[0].as_ref().unwrap().skipped, 8);
}

fn small_codec(limit: usize) -> MllpCodec {
    MllpCodec::with_config(FramingConfig {
        max_frame_length: limit,
        ..FramingConfig::default()
    })
    .unwrap()
}

#[test]
fn oversize_complete_frame_is_an_error_then_decoding_resumes() {
    let mut codec = small_codec(8);
    let mut buf = BytesMut::from(&b"\x0bMSH|^~\\&|X\rPID|1\x1c\x0d\x0bsmall\x1c\x0d"[..]);
    match codec.decode(&mut buf) {
        Err(MllpError::FrameTooLong { limit, head }) => {
            assert_eq!(limit, 8);
            assert_eq!(&head[..], b"MSH|^~\\&|X", "head is the first line only");
        }
        other => panic!("expected FrameTooLong, got {other:?}"),
    }
    let frame = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(&frame.payload[..], b"small");
    assert_eq!(frame.skipped, 0);
}

#[test]
fn exactly_the_limit_is_accepted() {
    let out = feed(&mut small_codec(5), &[b"\x0b12345\x1c\x0d"]);
    assert_eq!(payloads(&out), vec![b"12345".to_vec()]);
}

#[test]
fn oversize_across_reads_discards_until_the_end_byte() {
    let mut codec = small_codec(8);
    let out = feed(
        &mut codec,
        &[
            b"\x0b0123456789",
            b"more bytes of the same frame",
            b"still more\x1c\x0d\x0bok\x1c\x0d",
        ],
    );
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0].as_ref().unwrap_err(),
        "MLLP frame longer than the 8-byte limit"
    );
    assert_eq!(&out[1].as_ref().unwrap().payload[..], b"ok");
    assert_eq!(out[1].as_ref().unwrap().skipped, 0);
    assert!(!codec.is_mid_frame());
}

#[test]
fn eof_mid_frame_is_truncated() {
    let mut codec = small_codec(100);
    let out = feed(&mut codec, &[b"\x0bMSH|^~", b"\\&|A"]);
    assert_eq!(
        out,
        vec![Err(
            "connection closed inside an MLLP frame after 10 payload bytes".to_string()
        )]
    );
    assert!(!codec.is_mid_frame());
}

#[test]
fn mid_frame_state_is_visible_for_read_timeouts() {
    let mut codec = MllpCodec::new();
    let mut buf = BytesMut::from(&b"junk"[..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(!codec.is_mid_frame());
    buf.extend_from_slice(b"\x0bhalf");
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(codec.is_mid_frame());
}

#[test]
fn custom_framing_bytes() {
    let config = FramingConfig {
        start_byte: b'<',
        end_byte: b'>',
        trailer: None,
        max_frame_length: 1024,
    };
    let mut codec = MllpCodec::with_config(config).unwrap();
    let mut out = BytesMut::new();
    codec.encode(b"abc".as_slice(), &mut out).unwrap();
    assert_eq!(&out[..], b"<abc>");
    let results = feed(&mut codec, &[b"x<abc>\r<def>"]);
    assert_eq!(payloads(&results), vec![b"abc".to_vec(), b"def".to_vec()]);
    assert_eq!(
        results[1].as_ref().unwrap().skipped,
        1,
        "CR is junk without a trailer"
    );
}

#[test]
fn invalid_configs_are_refused() {
    let same = FramingConfig {
        end_byte: START_BYTE,
        ..FramingConfig::default()
    };
    assert_eq!(
        MllpCodec::with_config(same).unwrap_err(),
        ConfigError::SameStartAndEnd(START_BYTE)
    );
    let trailer = FramingConfig {
        trailer: Some(END_BYTE),
        ..FramingConfig::default()
    };
    assert!(MllpCodec::with_config(trailer).is_err());
    let zero = FramingConfig {
        max_frame_length: 0,
        ..FramingConfig::default()
    };
    assert_eq!(
        MllpCodec::with_config(zero).unwrap_err(),
        ConfigError::ZeroMaxLength
    );
}

#[test]
fn encoder_frames_and_refuses_framing_bytes_in_payload() {
    assert_eq!(framed(b"x"), b"\x0bx\x1c\x0d");
    let mut out = BytesMut::new();
    let err = MllpCodec::new()
        .encode(b"ab\x1ccd".as_slice(), &mut out)
        .unwrap_err();
    assert!(matches!(
        err,
        MllpError::FramingByteInPayload {
            byte: 0x1c,
            offset: 2
        }
    ));
    assert!(out.is_empty());
}

#[tokio::test]
async fn framed_read_over_a_stream_ends_with_truncation() {
    let mut stream = framed(MSG_A);
    stream.extend(b"\x0bMSH|cut");
    let mut reader = FramedRead::new(stream.as_slice(), MllpCodec::new());
    assert_eq!(&reader.next().await.unwrap().unwrap().payload[..], MSG_A);
    assert!(matches!(
        reader.next().await,
        Some(Err(MllpError::Truncated { received: 7 }))
    ));
}
