//! The command line's one error type: a stable code, a message and a help line, printed as
//! `error[synthpipe::CODE]: message` / `  help: …` on standard error.

use std::fmt;
use std::process::ExitCode;

/// Every code a command can fail with by itself (the library's errors bring their own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Read,
    Write,
    Run,
    Show,
    Gc,
    Clean,
    Verify,
    Schema,
    StoreOpen,
    LmBackend,
    LmDtype,
    LmNoChatTemplate,
    LmChatTemplate,
    LmChatFile,
    LmTokenize,
    LmEmptyPrompt,
    LmNoInput,
    LmNoTokenizer,
    LmTrainTokenizer,
    LmOutExists,
    LmWrite,
    LmAdapter,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Read => "synthpipe::cli::read",
            Code::Write => "synthpipe::cli::write",
            Code::Run => "synthpipe::run",
            Code::Show => "synthpipe::show",
            Code::Gc => "synthpipe::gc",
            Code::Clean => "synthpipe::clean",
            Code::Verify => "synthpipe::verify",
            Code::Schema => "synthpipe::schema",
            Code::StoreOpen => "synthpipe::store::open",
            Code::LmBackend => "synthpipe::lm::backend",
            Code::LmDtype => "synthpipe::lm::dtype",
            Code::LmNoChatTemplate => "synthpipe::lm::no_chat_template",
            Code::LmChatTemplate => "synthpipe::lm::chat_template",
            Code::LmChatFile => "synthpipe::lm::chat_file",
            Code::LmTokenize => "synthpipe::lm::tokenize",
            Code::LmEmptyPrompt => "synthpipe::lm::empty_prompt",
            Code::LmNoInput => "synthpipe::lm::no_input",
            Code::LmNoTokenizer => "synthpipe::lm::no_tokenizer",
            Code::LmTrainTokenizer => "synthpipe::lm::train_tokenizer",
            Code::LmOutExists => "synthpipe::lm::out_exists",
            Code::LmWrite => "synthpipe::lm::write",
            Code::LmAdapter => "synthpipe::lm::adapter",
        }
    }
}

/// A command's failure: what went wrong and what to do about it.
#[derive(Debug)]
pub struct CliError {
    pub code: Code,
    pub message: String,
    pub help: Option<String>,
}

impl CliError {
    pub fn new(code: Code, message: impl Into<String>) -> CliError {
        CliError {
            code,
            message: message.into(),
            help: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> CliError {
        self.help = Some(help.into());
        self
    }

    /// Prints the error on standard error.
    pub fn print(&self) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "{self}");
    }

    /// Prints the error; exit 2 (bad input or usage).
    pub fn exit(&self) -> ExitCode {
        self.print();
        ExitCode::from(2)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error[{}]: {}", self.code.as_str(), self.message)?;
        if let Some(h) = &self.help {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CliError {}
