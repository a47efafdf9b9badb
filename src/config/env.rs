//! `${VAR}` / `${VAR:-default}` interpolation, applied to the config text before
//! YAML parsing (design.md section 2). Pure function: the lookup is passed in so
//! tests never touch the process environment.

/// Replace every `${VAR}` and `${VAR:-default}` in `text`. Whole-line comments are
/// left alone so documentation in a config file can mention `${VAR}` freely.
/// Errors name the variable and the line, never a value.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (lineno, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                errors.push(format!("line {}: unterminated `${{`", lineno + 1));
                rest = "";
                break;
            };
            let expr = &after[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                errors.push(format!(
                    "line {}: `${{{}}}` is not a valid variable reference",
                    lineno + 1,
                    name
                ));
            } else {
                match (lookup(name), default) {
                    (Some(v), _) if !v.is_empty() || default.is_none() => out.push_str(&v),
                    (_, Some(d)) => out.push_str(d),
                    (None, None) => errors.push(format!(
                        "line {}: environment variable {name} is not set (and has no `:-default`)",
                        lineno + 1
                    )),
                    (Some(v), None) => out.push_str(&v),
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-secret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_set_and_default() {
        let out = interpolate("a: ${KEY}\nb: ${NOPE:-x y}\nc: ${EMPTY:-d}\n", env).unwrap();
        assert_eq!(out, "a: sk-secret\nb: x y\nc: d\n");
    }

    #[test]
    fn missing_names_variable_not_value() {
        let err = interpolate("a: ${KEY}\nb: ${MISSING}\n", env).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(err[0].contains("MISSING") && err[0].contains("line 2"));
        assert!(!err[0].contains("sk-secret"));
    }

    #[test]
    fn comments_untouched_and_bad_refs_reported() {
        assert_eq!(
            interpolate("# ${MISSING}\n", env).unwrap(),
            "# ${MISSING}\n"
        );
        assert!(interpolate("a: ${A-B}\n", env).is_err());
        assert!(interpolate("a: ${KEY\n", env).is_err());
    }
}
