//! HL7 v2 parser: zero-copy read path, owned editable message, paths, escapes, ACK builder.
