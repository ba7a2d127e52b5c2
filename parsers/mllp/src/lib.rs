//! MLLP frame codec (tokio-util Decoder/Encoder) with bounded frames and junk skipping.
