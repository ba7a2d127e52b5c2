//! Environment variables in channel files: `${env:NAME}` in addresses, URLs, header values and
//! folders, and `when_env: NAME` to switch a destination on only where `NAME` is set.
//!
//! Kept this small on purpose: a channel file stays readable as the one place that says what the
//! channel does, while a deployment supplies the few values that differ (a server URL, a token).
//! An empty variable counts as unset, so `FHIR_BASE_URL= junction run` turns a destination off.

/// How the loader reads a variable; tests pass a map instead of touching the process environment.
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, an empty value counting as unset.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A portable variable name: a letter or `_`, then letters, digits or `_`.
pub(crate) fn check_env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err("an environment variable name is letters, digits and '_', not starting with a digit, e.g. FHIR_BASE_URL".into())
    }
}

const OPEN: &str = "${env:";

/// Replace every `${env:NAME}` in `value`; any other `${...}` is left as written.
pub(crate) fn expand(value: &str, env: EnvLookup) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some((before, after)) = rest.split_once(OPEN) {
        out.push_str(before);
        let (name, tail) = after
            .split_once('}')
            .ok_or_else(|| "'${env:' is not closed by '}'".to_string())?;
        check_env_name(name)?;
        match env(name) {
            Some(v) => out.push_str(&v),
            None => return Err(format!("environment variable {name} is not set")),
        }
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "FHIR_BASE_URL").then(|| "http://fhir.test/r4".to_string())
    }

    #[test]
    fn references_expand_and_other_placeholders_stay() {
        assert_eq!(
            expand("${env:FHIR_BASE_URL}/Patient", &env).unwrap(),
            "http://fhir.test/r4/Patient"
        );
        assert_eq!(expand("${MSH-10}.json", &env).unwrap(), "${MSH-10}.json");
        assert_eq!(expand("plain", &env).unwrap(), "plain");
    }

    #[test]
    fn unset_unclosed_and_bad_names_are_errors() {
        assert_eq!(
            expand("${env:NOPE}", &env).unwrap_err(),
            "environment variable NOPE is not set"
        );
        assert!(expand("${env:FHIR_BASE_URL", &env)
            .unwrap_err()
            .contains("not closed"));
        assert!(expand("${env:9X}", &env)
            .unwrap_err()
            .contains("letters, digits"));
    }

    const CHANNEL: &str = "\
name: fhir
source:
  mllp: { listen: \"127.0.0.1:2576\" }
destinations:
  - name: files
    file: { dir: out }
  - name: server
    when_env: FHIR_BASE_URL
    http:
      url: \"${env:FHIR_BASE_URL}\"
      headers: { Authorization: \"Bearer ${env:FHIR_TOKEN}\" }
";

    fn parse(text: &str, env: EnvLookup) -> Result<crate::ChannelConfig, String> {
        let file = std::path::Path::new("channels/fhir.yaml");
        crate::convert::parse_channel_with_env(text, file, std::path::Path::new(""), env)
            .map_err(|d| d.to_string())
    }

    #[test]
    fn when_env_unset_leaves_the_destination_out_unchecked() {
        let c = parse(CHANNEL, &|_| None).unwrap();
        let names: Vec<&str> = c.destinations.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["files"]);
        assert_eq!(
            c.disabled,
            [crate::DisabledDestination {
                name: "server".into(),
                when_env: "FHIR_BASE_URL".into()
            }]
        );
    }

    #[test]
    fn when_env_set_expands_url_and_headers_and_places_a_missing_one() {
        let both = |n: &str| match n {
            "FHIR_BASE_URL" => Some("https://fhir.test/r4".to_string()),
            "FHIR_TOKEN" => Some("s3cret".to_string()),
            _ => None,
        };
        let c = parse(CHANNEL, &both).unwrap();
        let Some(crate::DestinationKind::Http(h)) = c.destinations.get(1).map(|d| &d.kind) else {
            panic!("no http destination: {c:?}");
        };
        assert_eq!(h.url, "https://fhir.test/r4");
        assert_eq!(h.headers.get("Authorization").unwrap(), "Bearer s3cret");
        assert!(c.disabled.is_empty());

        let url_only = |n: &str| both(n).filter(|_| n == "FHIR_BASE_URL");
        assert_eq!(
            parse(CHANNEL, &url_only).unwrap_err(),
            "channels/fhir.yaml:11:33: destinations[1].http.headers.Authorization: invalid \
             environment reference 'Bearer ${env:FHIR_TOKEN}': environment variable FHIR_TOKEN is not set"
        );
        let not_a_url = |n: &str| (n == "FHIR_BASE_URL").then(|| "fhir.test".to_string());
        let err = parse(
            &CHANNEL
                .replace(", headers", ", x")
                .replace("headers: {", "# {"),
            &not_a_url,
        );
        assert_eq!(
            err.unwrap_err(),
            "channels/fhir.yaml:10:12: destinations[1].http.url: invalid URL 'fhir.test': \
             expected an http:// or https:// URL"
        );
    }

    #[test]
    fn a_bad_variable_name_and_all_destinations_off_are_placed() {
        let text = CHANNEL.replace("when_env: FHIR_BASE_URL", "when_env: FHIR-URL");
        let err = parse(&text, &|_| None).unwrap_err();
        assert!(
            err.starts_with("channels/fhir.yaml:8:15: destinations[1].when_env: invalid environment variable name 'FHIR-URL'"),
            "{err}"
        );
        let text = CHANNEL.replace(
            "    file: { dir: out }",
            "    when_env: OUT_DIR\n    file: { dir: \"${env:OUT_DIR}\" }",
        );
        let err = parse(&text, &|_| None).unwrap_err();
        assert!(
            err.starts_with("channels/fhir.yaml:5:3: destinations: every destination is switched off by when_env (OUT_DIR, FHIR_BASE_URL not set)"),
            "{err}"
        );
        let listen = CHANNEL.replace("127.0.0.1:2576", "127.0.0.1:${env:PORT}");
        assert_eq!(
            parse(&listen, &|n| (n == "PORT").then(|| "2600".into()))
                .unwrap()
                .source
                .kind
                .listen_addr()
                .map(|a| a.port()),
            Some(2600)
        );
    }
}
