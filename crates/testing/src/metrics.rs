//! Checks shipped monitoring files (dashboards, alert rules) against a `/metrics` scrape.

/// The series named in `text` (words starting with `prefix`) that `metrics` (Prometheus text)
/// does not export, leaving out those in `except` (series that only appear once their event
/// happened), each once.
pub fn unexported(metrics: &str, text: &str, prefix: &str, except: &[&str]) -> Vec<String> {
    let mut missing: Vec<String> = Vec::new();
    for (i, _) in text.match_indices(prefix) {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let exported =
            metrics.contains(&format!("\n{name}{{")) || metrics.contains(&format!("\n{name} "));
        if !exported && !except.contains(&name.as_str()) && !missing.contains(&name) {
            missing.push(name);
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_series_a_file_reads_that_are_not_exported() {
        let metrics = "# HELP a\nkamiyo_a_total{x=\"1\"} 1\nkamiyo_b 2\n";
        let text = "rate(kamiyo_a_total[5m]) + kamiyo_b + kamiyo_c + kamiyo_c + kamiyo_d";
        assert_eq!(
            unexported(metrics, text, "kamiyo_", &["kamiyo_d"]),
            vec!["kamiyo_c".to_owned()]
        );
    }
}
