//! Text generation with a key/value cache: prompts of different lengths left-padded into one
//! batch, prefilled in chunks, then decoded a token at a time with greedy or seeded sampling
//! (temperature, top-k, top-p, min-p) until EOS, a stop string or the token budget; and the
//! log-probabilities of given completions (what GRPO's policy ratio needs), batched.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, TensorData};
use rayon::prelude::*;

use super::load::Model;
use super::net::{Cache, Chunk};
use crate::util::rng::Rng;

#[derive(Clone, Debug)]
pub struct Sampling {
    /// 0: greedy.
    pub temperature: f64,
    /// 0: off.
    pub top_k: usize,
    /// 1.0: off.
    pub top_p: f64,
    /// 0.0: off.
    pub min_p: f64,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct GenOptions {
    pub max_new_tokens: usize,
    pub stop: Vec<String>,
    pub sampling: Sampling,
    /// Prompt tokens fed per forward pass during prefill.
    pub prefill_chunk: usize,
    /// Keep going past end-of-sequence tokens (for benchmarks and reference comparisons).
    pub ignore_eos: bool,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            max_new_tokens: 128,
            stop: Vec::new(),
            sampling: Sampling::default(),
            prefill_chunk: 512,
            ignore_eos: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    Eos,
    Stop,
    Length,
}

#[derive(Clone, Debug)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish: Finish,
}

/// Timing of a `generate` call, for tokens/s.
#[derive(Clone, Debug, Default)]
pub struct Timing {
    pub prompt_tokens: usize,
    pub prefill_seconds: f64,
    pub new_tokens: usize,
    pub decode_seconds: f64,
}

/// Picks a token from `logits` (one row).
pub fn sample(logits: &[f32], s: &Sampling, rng: &mut Rng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |b, (i, &v)| {
                if v > b.1 { (i, v) } else { b }
            })
            .0 as u32
    };
    if s.temperature <= 0.0 {
        return argmax();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut cands: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as u32, (f64::from(v - max) / s.temperature).exp()))
        .collect();
    // Highest probability first, ties by id, so the draw is reproducible.
    cands.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if s.top_k > 0 {
        cands.truncate(s.top_k);
    }
    let total: f64 = cands.iter().map(|c| c.1).sum();
    if s.min_p > 0.0 {
        let floor = cands[0].1 * s.min_p;
        cands.retain(|c| c.1 >= floor);
    }
    if s.top_p < 1.0 {
        let mut acc = 0.0;
        let mut keep = 0;
        for c in &cands {
            keep += 1;
            acc += c.1 / total;
            if acc >= s.top_p {
                break;
            }
        }
        cands.truncate(keep.max(1));
    }
    let total: f64 = cands.iter().map(|c| c.1).sum();
    let mut x = rng.unit() * total;
    for c in &cands {
        x -= c.1;
        if x <= 0.0 {
            return c.0;
        }
    }
    cands.last().map_or_else(argmax, |c| c.0)
}

/// How many leading tokens all `prompts` share, leaving each at least one of its own
/// (0 for fewer than two prompts).
fn common_prefix(prompts: &[Vec<u32>]) -> usize {
    let Some(first) = prompts.first().filter(|_| prompts.len() > 1) else {
        return 0;
    };
    let limit = prompts
        .iter()
        .map(Vec::len)
        .min()
        .unwrap_or(0)
        .saturating_sub(1);
    (0..limit)
        .take_while(|&i| prompts.iter().all(|p| p[i] == first[i]))
        .count()
}

/// Token rows of equal length as a `[rows, width]` id tensor.
pub(crate) fn ids_tensor(rows: &[Vec<u32>], device: &Device) -> Tensor<2, Int> {
    let (b, t) = (rows.len(), rows.first().map_or(0, Vec::len));
    let flat: Vec<i64> = rows
        .iter()
        .flat_map(|r| r.iter().map(|&x| i64::from(x)))
        .collect();
    Tensor::<1, Int>::from_data(TensorData::new(flat, [b * t]), device).reshape([b, t])
}

/// A tensor's values as f32, or why the backend could not produce them (out of device
/// memory, a lost device): an error for the caller to report, never a panic.
pub(crate) fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, String> {
    t.try_into_data()
        .map_err(|e| format!("the backend failed: {e}"))?
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| format!("cannot read the backend's output: {e:?}"))
}

fn last_logits(logits: Tensor<3>) -> Result<Vec<Vec<f32>>, String> {
    let [b, t, v] = logits.dims();
    let last = logits.slice([0..b, t - 1..t, 0..v]).reshape([b, v]);
    Ok(read_f32(last)?.chunks(v).map(<[f32]>::to_vec).collect())
}

/// A prefilled prefix kept from one `generate` call for the next (an evaluation's chat
/// header, instruction and worked examples, the same for every batch): its tokens and their
/// keys and values, for one row. Valid only for the model that made it.
#[derive(Clone, Debug)]
pub struct Prefix {
    tokens: Vec<u32>,
    cache: Cache,
}

/// How many leading tokens `prefix` shares with every prompt, leaving each at least one.
fn reusable(prefix: &[u32], prompts: &[Vec<u32>]) -> usize {
    prompts
        .iter()
        .map(|p| {
            p.iter()
                .zip(prefix)
                .take(p.len().saturating_sub(1))
                .take_while(|(a, b)| a == b)
                .count()
        })
        .min()
        .unwrap_or(0)
}

/// A group of rows' cache after its prefill, and each row's last logits.
type Prefilled = (Cache, Vec<Vec<f32>>);

/// Rows at least this long are prefilled alone on the CPU: from there a row's own products
/// are as efficient as a batch's.
const ALONE: usize = 256;

/// The rows prefilled together, by index into `lens` (their lengths): ordered longest
/// first, a row joins the current group while the padding the group computes (every row is
/// padded to its longest) stays within an eighth of its real tokens, or 256 positions for
/// short rows, which gain more from sharing a pass than they lose to padding; a row of
/// `alone` tokens or more is a group of its own. Indices are ascending within a group, so
/// one group is the rows in their own order.
fn prefill_groups(lens: &[usize], alone: usize) -> Vec<Vec<usize>> {
    let mut by_len: Vec<usize> = (0..lens.len()).collect();
    by_len.sort_by_key(|&i| (std::cmp::Reverse(lens[i]), i));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut real = 0;
    for i in by_len {
        if let Some(g) = groups.last_mut().filter(|g| lens[g[0]] < alone) {
            let longest = lens[g[0]];
            let padding = longest * (g.len() + 1) - (real + lens[i]);
            if padding <= ((real + lens[i]) / 8).max(256) {
                g.push(i);
                real += lens[i];
                continue;
            }
        }
        groups.push(vec![i]);
        real = lens[i];
    }
    for g in &mut groups {
        // The group's longest row led it; sorting keeps its length as the group's width.
        g.sort_unstable();
    }
    groups
}

impl Model {
    /// Generates a continuation for each prompt (token ids). Rows are independent: the same
    /// prompt gives the same tokens alone or in a batch (greedy), and a seed fixes sampling.
    /// Consecutive equal prompts (a GRPO group) are prefilled once and their rows decoded
    /// from copies of that one cache. Fails only when the backend does (e.g. out of device
    /// memory).
    pub fn generate(
        &self,
        all_prompts: &[Vec<u32>],
        opts: &GenOptions,
    ) -> Result<(Vec<Generation>, Timing), String> {
        self.generate_reusing(all_prompts, opts, None)
    }

    /// [`Model::generate`], reusing the keys and values of the prefix `kept` holds from an
    /// earlier call as far as the prompts share it, and keeping this call's shared prefix
    /// there for the next one: an evaluation prefills its instruction and worked examples
    /// once, not once per batch. The outputs are those of prefilling everything.
    pub fn generate_reusing(
        &self,
        all_prompts: &[Vec<u32>],
        opts: &GenOptions,
        kept: Option<&mut Option<Prefix>>,
    ) -> Result<(Vec<Generation>, Timing), String> {
        let device = self.net.embed.val().device();
        let b = all_prompts.len();
        let mut timing = Timing::default();
        if b == 0 {
            return Ok((Vec::new(), timing));
        }
        let (distinct, row_of) = super::net::runs(all_prompts);
        // The prefix every distinct prompt shares (the chat header, the instruction and the
        // worked examples of an evaluation batch) is prefilled once, for one row, and its
        // keys and values copied to every row; each row prefills at least its last token.
        // When a prefix is kept between calls, a lone prompt keeps all but its last token.
        let reuse = match kept.as_deref() {
            Some(Some(p)) => reusable(&p.tokens, &distinct),
            _ => 0,
        };
        let shared = match (&kept, distinct.as_slice()) {
            (Some(_), [only]) => only.len().saturating_sub(1),
            _ => common_prefix(&distinct),
        }
        .max(reuse);
        let prompts: Vec<&[u32]> = distinct.iter().map(|p| &p[shared..]).collect();
        let pad = self.tokenizer.eos_token_ids.first().copied().unwrap_or(0);
        timing.prompt_tokens = shared - reuse + prompts.iter().map(|p| p.len()).sum::<usize>();
        let started = std::time::Instant::now();
        let chunk = opts.prefill_chunk.max(1);
        let mut cache = match kept.as_deref() {
            Some(Some(p)) if reuse > 0 => p.cache.truncated(reuse),
            // Used only when there is a shared prefix to prefill into it.
            _ => Cache::new(self.cfg.num_layers, 1),
        };
        let cpu = self.on_cpu();
        let chunks: Vec<Chunk> = (reuse..shared)
            .step_by(chunk)
            .map(|at| {
                let end = (at + chunk).min(shared);
                let ids = vec![distinct[0][at..end].to_vec()];
                (ids_tensor(&ids, &device), vec![vec![true; end - at]])
            })
            .collect();
        self.net.hidden_chunks(&self.cfg, chunks, &mut cache, cpu);
        if let Some(slot) = kept
            && shared > 0
        {
            *slot = Some(Prefix {
                tokens: distinct[0][..shared].to_vec(),
                cache: cache.clone(),
            });
        }
        // Rows of very different lengths are prefilled in groups of similar ones, so that
        // a short row does not compute the padding up to a long one's length, and joined
        // for decoding.
        let lens: Vec<usize> = prompts.iter().map(|p| p.len()).collect();
        // On the CPU a long row fills the matrix products alone, and rows prefilled two at
        // a time keep both cores busy through the other's serial steps (norms, copies).
        let groups = prefill_groups(&lens, if cpu { ALONE } else { usize::MAX });
        let prefill = |group: &Vec<usize>| -> Result<Prefilled, String> {
            let mut part = if shared > 0 {
                cache.select_rows(&vec![0; group.len()])
            } else {
                Cache::new(self.cfg.num_layers, group.len())
            };
            let rows: Vec<&[u32]> = group.iter().map(|&i| prompts[i]).collect();
            let last = self.prefill_rows(&rows, pad, chunk, cpu, &mut part)?;
            Ok((part, last))
        };
        let done: Vec<Result<Prefilled, String>> = if cpu && groups.len() > 1 {
            groups.par_iter().map(prefill).collect()
        } else {
            groups.iter().map(prefill).collect()
        };
        let mut logits = vec![Vec::new(); prompts.len()];
        let mut parts = Vec::with_capacity(groups.len());
        for (group, d) in groups.iter().zip(done) {
            let (part, last) = d?;
            for (&i, l) in group.iter().zip(last) {
                logits[i] = l;
            }
            parts.push(part);
        }
        // Row `i` of the joined cache is prompt `order[i]`.
        let order: Vec<usize> = groups.concat();
        cache = if parts.len() == 1 {
            parts.pop().unwrap_or(cache)
        } else {
            Cache::join(parts, shared)
        };
        let mut at_row = vec![0; order.len()];
        for (i, &u) in order.iter().enumerate() {
            at_row[u] = i;
        }
        let rows: Vec<usize> = row_of.iter().map(|&u| at_row[u]).collect();
        if rows.iter().enumerate().any(|(i, &r)| i != r) {
            cache = cache.select_rows(&rows);
        }
        let mut logits: Vec<Vec<f32>> = row_of.iter().map(|&u| logits[u].clone()).collect();
        timing.prefill_seconds = started.elapsed().as_secs_f64();
        let started = std::time::Instant::now();
        let mut rngs: Vec<Rng> = (0..b)
            .map(|r| Rng::stream(opts.sampling.seed, &format!("sample/{r}")))
            .collect();
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); b];
        let mut finish: Vec<Option<Finish>> = vec![None; b];
        // The rows still decoding, in the cache's order.
        let mut live: Vec<usize> = (0..b).collect();
        for step in 0..opts.max_new_tokens {
            let mut next = Vec::with_capacity(b);
            for r in 0..b {
                if finish[r].is_some() {
                    next.push(pad);
                    continue;
                }
                let t = sample(&logits[r], &opts.sampling, &mut rngs[r]);
                next.push(t);
                if !opts.ignore_eos && self.tokenizer.eos_token_ids.contains(&t) {
                    finish[r] = Some(Finish::Eos);
                    continue;
                }
                out[r].push(t);
                timing.new_tokens += 1;
                if !opts.stop.is_empty() {
                    let text = self.tokenizer.decode(&out[r], false).unwrap_or_default();
                    if opts.stop.iter().any(|s| text.contains(s.as_str())) {
                        finish[r] = Some(Finish::Stop);
                    }
                }
            }
            if finish.iter().all(Option::is_some) || step + 1 == opts.max_new_tokens {
                break;
            }
            // A finished row leaves the batch: every step costs in proportion to the rows
            // it carries, and one long answer would otherwise keep the whole batch's rows
            // running. Rows are independent, so the others' tokens do not change.
            let keep: Vec<usize> = live
                .iter()
                .enumerate()
                .filter(|&(_, &r)| finish[r].is_none())
                .map(|(i, _)| i)
                .collect();
            if keep.len() < live.len() {
                cache = cache.select_rows(&keep);
                live = keep.iter().map(|&i| live[i]).collect();
            }
            let ids: Vec<Vec<u32>> = live.iter().map(|&r| vec![next[r]]).collect();
            let ok: Vec<Vec<bool>> = vec![vec![true]; live.len()];
            let l = self
                .net
                .forward(&self.cfg, ids_tensor(&ids, &device), &ok, &mut cache);
            for (&r, row) in live.iter().zip(last_logits(l)?) {
                logits[r] = row;
            }
        }
        timing.decode_seconds = started.elapsed().as_secs_f64();
        let gens = out
            .into_iter()
            .zip(finish)
            .map(|(tokens, f)| {
                let mut text = self.tokenizer.decode(&tokens, true).unwrap_or_default();
                let finish = f.unwrap_or(Finish::Length);
                if finish == Finish::Stop
                    && let Some(i) = opts.stop.iter().filter_map(|s| text.find(s.as_str())).min()
                {
                    text.truncate(i);
                }
                Generation {
                    tokens,
                    text,
                    finish,
                }
            })
            .collect();
        Ok((gens, timing))
    }

    /// Whether the model runs on the CPU (flex).
    fn on_cpu(&self) -> bool {
        self.net
            .embed
            .val()
            .try_into_primitive::<burn::backend::Flex>()
            .is_ok()
    }

    /// Prefills `rows` (after what `cache` holds), left-padded to the longest, in passes of
    /// `chunk` positions (overlapped on the CPU); the last position's logits of each row.
    fn prefill_rows(
        &self,
        rows: &[&[u32]],
        pad: u32,
        chunk: usize,
        cpu: bool,
        cache: &mut Cache,
    ) -> Result<Vec<Vec<f32>>, String> {
        let device = self.net.embed.val().device();
        let longest = rows.iter().map(|p| p.len()).max().unwrap_or(0).max(1);
        // Left padding: every row's last prompt token is at the same column. Padding after a
        // shared prefix sits mid-row; it is masked and advances no position.
        let padded: Vec<Vec<u32>> = rows
            .iter()
            .map(|p| {
                let mut r = vec![pad; longest - p.len()];
                r.extend_from_slice(p);
                r
            })
            .collect();
        let valid: Vec<Vec<bool>> = rows
            .iter()
            .map(|p| {
                let mut v = vec![false; longest - p.len()];
                v.extend(std::iter::repeat_n(true, p.len()));
                v
            })
            .collect();
        let chunks: Vec<Chunk> = (0..longest)
            .step_by(chunk)
            .map(|at| {
                let end = (at + chunk).min(longest);
                let ids: Vec<Vec<u32>> = padded.iter().map(|r| r[at..end].to_vec()).collect();
                let ok: Vec<Vec<bool>> = valid.iter().map(|r| r[at..end].to_vec()).collect();
                (ids_tensor(&ids, &device), ok)
            })
            .collect();
        let h = self
            .net
            .hidden_chunks(&self.cfg, chunks, cache, cpu)
            .ok_or("nothing to prefill")?;
        // Only the last position's logits are needed: projecting every prompt position onto
        // the vocabulary would cost a quarter of the prefill for nothing.
        let [bb, tt, hh] = h.dims();
        last_logits(self.net.logits(h.slice([0..bb, tt - 1..tt, 0..hh])))
    }

    /// Full-sequence logits `[t, vocab]` of one sequence, without a cache (for checks).
    pub fn logits(&self, ids: &[u32]) -> Result<Vec<Vec<f32>>, String> {
        let device = self.net.embed.val().device();
        let mut cache = Cache::new(self.cfg.num_layers, 1);
        let out = self.net.forward(
            &self.cfg,
            ids_tensor(&[ids.to_vec()], &device),
            &[vec![true; ids.len()]],
            &mut cache,
        );
        let v = self.cfg.vocab_size;
        Ok(read_f32(out)?.chunks(v).map(<[f32]>::to_vec).collect())
    }

    /// Log-probability of each completion token given its prompt and the completion so far,
    /// for a batch of (prompt, completion) pairs.
    pub fn logprobs(&self, pairs: &[(Vec<u32>, Vec<u32>)]) -> Result<Vec<Vec<f32>>, String> {
        let device = self.net.embed.val().device();
        let b = pairs.len();
        if b == 0 {
            return Ok(Vec::new());
        }
        let pad = self.tokenizer.eos_token_ids.first().copied().unwrap_or(0);
        let len = pairs
            .iter()
            .map(|(p, c)| p.len() + c.len())
            .max()
            .unwrap_or(1);
        // Right padding here: every row starts at position 0, padding after the completion.
        let rows: Vec<Vec<u32>> = pairs
            .iter()
            .map(|(p, c)| {
                let mut r = p.clone();
                r.extend(c);
                r.resize(len, pad);
                r
            })
            .collect();
        let valid: Vec<Vec<bool>> = pairs
            .iter()
            .map(|(p, c)| {
                let mut v = vec![true; p.len() + c.len()];
                v.resize(len, false);
                v
            })
            .collect();
        let mut cache = Cache::new(self.cfg.num_layers, b);
        let logits = self
            .net
            .forward(&self.cfg, ids_tensor(&rows, &device), &valid, &mut cache);
        let lp = log_softmax(logits, 2);
        // Position i predicts token i + 1.
        let targets: Vec<i64> = rows
            .iter()
            .flat_map(|r| {
                let mut t: Vec<i64> = r[1..].iter().map(|&x| i64::from(x)).collect();
                t.push(i64::from(pad));
                t
            })
            .collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(targets, [b * len]), &device)
            .reshape([b, len, 1]);
        let picked = lp.gather(2, idx).reshape([b, len]);
        let flat = read_f32(picked)?;
        Ok(pairs
            .iter()
            .enumerate()
            .map(|(r, (p, c))| {
                let start = p.len().saturating_sub(1);
                flat[r * len + start..r * len + start + c.len()].to_vec()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_similar_length_share_a_prefill_and_long_ones_go_alone() {
        // Short rows group while their padding stays small, in their own order.
        assert_eq!(
            prefill_groups(&[30, 40, 12, 35], 256),
            vec![vec![0, 1, 2, 3]]
        );
        // A long row among short ones would make them compute its padding.
        assert_eq!(
            prefill_groups(&[30, 4000, 12], usize::MAX),
            vec![vec![1], vec![0, 2]]
        );
        // Benchmark-like rows: groups within an eighth of padding, longest first.
        assert_eq!(
            prefill_groups(
                &[1793, 1935, 1956, 1986, 2108, 2301, 3095, 3374],
                usize::MAX
            ),
            vec![vec![6, 7], vec![1, 2, 3, 4, 5], vec![0]]
        );
        // On the CPU every row of `alone` tokens or more is a group of its own.
        assert_eq!(
            prefill_groups(&[300, 20, 256, 255], 256),
            vec![vec![0], vec![2], vec![1, 3]]
        );
        assert!(prefill_groups(&[], 256).is_empty());
    }
}
