//! Chat templates: the Jinja template a model ships (`tokenizer_config.json` or GGUF
//! `tokenizer.chat_template`) rendered with minijinja the way Hugging Face renders it
//! (`trim_blocks`, `lstrip_blocks`, Python string methods, `raise_exception`), including
//! Qwen3's `enable_thinking` switch.

use minijinja::{Environment, Error, ErrorKind, context};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Options a template may read.
#[derive(Clone, Debug, Default)]
pub struct ChatOptions {
    /// End with the header of an assistant turn, so the model writes the reply.
    pub add_generation_prompt: bool,
    /// Qwen3: `Some(false)` asks for an answer without a thinking block.
    pub enable_thinking: Option<bool>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
}

/// Renders `messages` with `template`.
pub fn render(template: &str, messages: &[Message], opts: &ChatOptions) -> Result<String, String> {
    let mut env = Environment::new();
    // Hugging Face renders chat templates with trim_blocks and lstrip_blocks on.
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(|e| format!("cannot configure the template engine: {e}"))?;
    env.set_syntax(syntax);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, msg))
    });
    let tmpl = env
        .template_from_str(template)
        .map_err(|e| format!("the chat template does not parse: {e}"))?;
    let ctx = context! {
        messages => messages
            .iter()
            .map(|m| context! { role => m.role.clone(), content => m.content.clone() })
            .collect::<Vec<_>>(),
        add_generation_prompt => opts.add_generation_prompt,
        enable_thinking => opts.enable_thinking,
        bos_token => opts.bos_token.clone().unwrap_or_default(),
        eos_token => opts.eos_token.clone().unwrap_or_default(),
    };
    tmpl.render(ctx)
        .map_err(|e| format!("the chat template fails: {e}"))
}
