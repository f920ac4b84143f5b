//! Pools: inline value lists and pool files (read by the load step before checking).

use super::*;

impl Cx<'_> {
    pub(super) fn pools(&mut self, t: &Tables) -> Vec<Pool> {
        let mut out = Vec::new();
        for p in &t.pools_in_order {
            let (file, values, span) = match &p.source {
                PoolSource::List(items) => (
                    None,
                    items.iter().map(|s| s.value.clone()).collect::<Vec<_>>(),
                    p.span,
                ),
                PoolSource::File(path) => match self.pool_files.get(&path.value) {
                    Some(Ok(text)) => {
                        let values = text
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty() && !l.starts_with('#'))
                            .map(str::to_string)
                            .collect();
                        (Some(path.value.clone()), values, path.span)
                    }
                    other => {
                        let why = match other {
                            Some(Err(why)) => why.clone(),
                            _ => "it was not read (this is a bug in synthpipe)".into(),
                        };
                        self.push(
                                Diagnostic::new(
                                    Code::PoolFileMissing,
                                    path.span,
                                    format!("pool file `{}` cannot be read", path.value),
                                )
                                .label(why)
                                .help("pool file paths are relative to the rule file's directory; one value per line"),
                            );
                        (Some(path.value.clone()), vec!["?".to_string()], path.span)
                    }
                },
            };
            if values.is_empty() {
                self.push(
                    Diagnostic::new(Code::PoolEmpty, span, format!("pool `{}` has no values", p.name.text))
                        .label("empty pool")
                        .help("a pool needs at least one value (files: one per line; `#` starts a comment line)"),
                );
            }
            let mut h = blake3::Hasher::new();
            for v in &values {
                h.update(v.as_bytes());
                h.update(b"\n");
            }
            out.push(Pool {
                name: p.name.text.clone(),
                file,
                len: values.len(),
                digest: format!("b3:{}", h.finalize().to_hex()),
                values,
            });
        }
        out
    }
}
