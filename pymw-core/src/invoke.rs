//! The runtime behind every task's generated `invoke` shim: decoding,
//! running with panics caught, encoding. Written once here rather than
//! generated per task.

use crate::wire::Failure;
use serde::{Serialize, de::DeserializeOwned};
use std::cell::RefCell;
use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a task function may return: a value, or `Result<T, E>` whose `Err`
/// is a task failure carrying `E`'s message (with its `source()` chain: the
/// generated code turns `Err(e)` into its message with [`error_kind`]). `#[pymw::task]` picks the
/// `Result` form when the return type is spelled `Result<..>` (any path
/// ending in `Result`, such as `anyhow::Result<T>` or `io::Result<T>`).
pub trait TaskResult {
    /// The value the master receives.
    type Value: Serialize;
    /// The value, or the error's message.
    fn into_task_result(self) -> Result<Self::Value, String>;
}

impl<T: Serialize, E: Display> TaskResult for Result<T, E> {
    type Value = T;
    fn into_task_result(self) -> Result<T, String> {
        // `{:#}` shows the whole chain for anyhow-style errors; for other
        // errors it is the same as `{}`.
        self.map_err(|e| format!("{e:#}"))
    }
}

/// The message of a task's `Err(e)`, chosen by the concrete type of `e` at
/// the call site that `#[pymw::task]` generates (autoref specialization: the
/// generated code calls `(&e).pymw_error_kind().message(&e)` with both
/// traits in scope, and method lookup takes the first that applies):
///
/// * `e` implements [`std::error::Error`]: `e`, then each `source()` in
///   turn, joined by `": "` (`read config: No such file or directory (os
///   error 2)`); a source whose text the message already holds is not
///   repeated (for `#[error("...: {0}")]` styles).
/// * `e` is a `Box<dyn Error>` (also `+ Send`, `+ Send + Sync`): the same
///   chain, of the boxed error.
/// * otherwise `e` is only `Display` (`anyhow::Error`, `String`, `&str`):
///   `{e:#}`, which is anyhow's whole chain and plain `{e}` for the others.
pub mod error_kind {
    use std::error::Error;
    use std::fmt::Display;

    /// The tag of errors that implement [`std::error::Error`].
    #[derive(Debug, Clone, Copy)]
    pub struct Chain;

    /// The tag of errors that are only `Display`.
    #[derive(Debug, Clone, Copy)]
    pub struct Alternate;

    /// Chosen first, for `E: Error` (the method takes `&E`).
    pub trait ErrorKind {
        /// The tag that formats this error.
        fn pymw_error_kind(&self) -> Chain {
            Chain
        }
    }
    impl<E: Error + ?Sized> ErrorKind for E {}

    /// Chosen otherwise (the method takes `&&E`); [`Alternate::message`]
    /// then asks for `E: Display`. Unbounded here, so that an error type
    /// that is not `Display` is reported once, as that, not also as a
    /// missing method.
    pub trait DisplayKind {
        /// The tag that formats this error.
        fn pymw_error_kind(&self) -> Alternate {
            Alternate
        }
    }
    impl<E: ?Sized> DisplayKind for &E {}

    /// The tag of boxed errors (`Box<dyn Error>`, `+ Send`, `+ Send +
    /// Sync`), which are not `Error` themselves but hold one.
    #[derive(Debug, Clone, Copy)]
    pub struct BoxedChain;

    /// Chosen first too, for boxed errors (the method takes `&Box<..>`).
    pub trait BoxedKind {
        /// The tag that formats this error.
        fn pymw_error_kind(&self) -> BoxedChain {
            BoxedChain
        }
    }
    impl BoxedKind for Box<dyn Error> {}
    impl BoxedKind for Box<dyn Error + Send> {}
    impl BoxedKind for Box<dyn Error + Send + Sync> {}

    /// The error inside a box.
    pub trait AsDynError {
        /// The boxed error.
        fn as_dyn_error(&self) -> &(dyn Error + 'static);
    }
    impl AsDynError for Box<dyn Error> {
        fn as_dyn_error(&self) -> &(dyn Error + 'static) {
            &**self
        }
    }
    impl AsDynError for Box<dyn Error + Send> {
        fn as_dyn_error(&self) -> &(dyn Error + 'static) {
            &**self
        }
    }
    impl AsDynError for Box<dyn Error + Send + Sync> {
        fn as_dyn_error(&self) -> &(dyn Error + 'static) {
            &**self
        }
    }

    impl BoxedChain {
        /// `e: source: source...` of the boxed error.
        pub fn message(self, e: &impl AsDynError) -> String {
            chain_message(e.as_dyn_error())
        }
    }

    impl Chain {
        /// `e: source: source...`.
        pub fn message<E: Error + ?Sized>(self, e: &E) -> String {
            chain_message(e)
        }
    }

    impl Alternate {
        /// `{e:#}`.
        pub fn message<E: Display + ?Sized>(self, e: &E) -> String {
            format!("{e:#}")
        }
    }

    /// `e`, then each of its sources not already in the message, joined by `": "`.
    pub fn chain_message(e: &(impl Error + ?Sized)) -> String {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !text.is_empty() && !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        message
    }
}

/// Wraps a plain return value so the shim handles both forms alike.
#[doc(hidden)]
pub struct Plain<T>(pub T);

impl<T: Serialize> TaskResult for Plain<T> {
    type Value = T;
    fn into_task_result(self) -> Result<T, String> {
        Ok(self.0)
    }
}

thread_local! {
    static LAST_PANIC: RefCell<Option<(String, Option<String>)>> = const { RefCell::new(None) };
}

/// The heap address of pymw's installed panic hook; 0 before
/// [`install_panic_hook`].
static OUR_HOOK: AtomicUsize = AtomicUsize::new(0);

type Hook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// pymw's panic hook. It captures a byte so that it is not zero-sized: each
/// box of it has its own heap address, which tells it apart from any hook a
/// task installs.
fn our_hook() -> Hook {
    let marker = 1u8;
    Box::new(move |info| {
        // A use that makes the closure capture the byte.
        std::hint::black_box(&marker);
        let message = panic_message(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        match &location {
            Some(location) => eprintln!("pymw: task panicked at {location}: {message}"),
            None => eprintln!("pymw: task panicked: {message}"),
        }
        LAST_PANIC.with(|last| *last.borrow_mut() = Some((message, location)));
    })
}

fn hook_address(hook: &Hook) -> usize {
    std::ptr::from_ref(&**hook).cast::<()>() as usize
}

/// Installs (once) a panic hook that records the message and location of a
/// task's panic for the output envelope, and still prints it to stderr so it
/// reaches the task's stderr tail.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let hook = our_hook();
        OUR_HOOK.store(hook_address(&hook), Ordering::Relaxed);
        std::panic::set_hook(hook);
    });
}

/// Puts pymw's panic hook back if a task replaced it (`std::panic::set_hook`),
/// so that the next task's panic still has its location and the task's hook
/// does not outlive it. Two uncontended lock round trips when nothing
/// changed: cheap enough to run after every task.
fn restore_panic_hook() {
    let ours = OUR_HOOK.load(Ordering::Relaxed);
    if ours == 0 {
        return;
    }
    let current = std::panic::take_hook();
    if hook_address(&current) == ours {
        std::panic::set_hook(current);
        return;
    }
    drop(current);
    let hook = our_hook();
    OUR_HOOK.store(hook_address(&hook), Ordering::Relaxed);
    std::panic::set_hook(hook);
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic payload is not a string".to_owned()
    }
}

/// Decodes `A` from `input`, runs `f`, and appends the encoded value to
/// `output`. Every failure (decode error, `Err`, panic) comes back as a
/// [`Failure`]; nothing unwinds out of here.
pub fn invoke<A, R>(
    input: &[u8],
    output: &mut Vec<u8>,
    f: impl FnOnce(A) -> R,
) -> Result<(), Failure>
where
    A: DeserializeOwned,
    R: TaskResult,
{
    let args: A = match postcard::from_bytes(input) {
        Ok(args) => args,
        Err(e) => {
            return Err(Failure::Decode {
                message: format!(
                    "the input does not decode as the task's arguments ({}): {e}",
                    std::any::type_name::<A>()
                ),
            });
        }
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(args).into_task_result()));
    restore_panic_hook();
    match result {
        Ok(Ok(value)) => {
            let taken = std::mem::take(output);
            match postcard::to_extend(&value, taken) {
                Ok(done) => {
                    *output = done;
                    Ok(())
                }
                Err(e) => Err(Failure::TaskError {
                    message: format!("the task's value could not be serialized: {e}"),
                }),
            }
        }
        Ok(Err(message)) => Err(Failure::TaskError { message }),
        Err(payload) => {
            let (message, location) = LAST_PANIC
                .with(|last| last.borrow_mut().take())
                .unwrap_or_else(|| (panic_message(payload.as_ref()), None));
            Err(Failure::Panic { message, location })
        }
    }
}

/// Decodes two replicas' values and asks the task's validator whether they
/// agree. A value that does not decode is an error: that replica is malformed.
pub fn validate<T: DeserializeOwned>(
    a: &[u8],
    b: &[u8],
    agree: fn(&T, &T) -> bool,
) -> Result<bool, String> {
    let decode = |bytes: &[u8], which: &str| {
        crate::wire::decode_payload::<T>(bytes).map_err(|e| {
            format!(
                "the {which} replica's value does not decode as {}: {e}",
                std::any::type_name::<T>()
            )
        })
    };
    Ok(agree(&decode(a, "first")?, &decode(b, "second")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests that panic or touch the process-wide panic hook take turns.
    static HOOK_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_task_hook_is_replaced_by_ours() {
        let _turn = HOOK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        install_panic_hook();
        let input = postcard::to_stdvec(&1u32).unwrap();
        // A task that installs a hook of its own and returns.
        invoke(&input, &mut Vec::new(), |_: u32| {
            std::panic::set_hook(Box::new(|_| {}));
            Plain(0u8)
        })
        .unwrap();
        // A later task's panic still goes through pymw's hook.
        let err = invoke(&input, &mut Vec::new(), |_: u32| -> Plain<u8> {
            panic!("after the user's hook")
        })
        .unwrap_err();
        match err {
            Failure::Panic { message, location } => {
                assert_eq!(message, "after the user's hook");
                assert!(location.is_some_and(|l| l.contains("invoke.rs")));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn plain_error_and_panic() {
        let _turn = HOOK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        install_panic_hook();
        let input = postcard::to_stdvec(&(3u32, 4u32)).unwrap();
        let mut out = Vec::new();
        invoke(&input, &mut out, |(a, b): (u32, u32)| Plain(a * b)).unwrap();
        assert_eq!(postcard::from_bytes::<u32>(&out).unwrap(), 12);

        let err = invoke(&input, &mut Vec::new(), |_: (u32, u32)| {
            Err::<u32, _>("no luck")
        })
        .unwrap_err();
        assert_eq!(
            err,
            Failure::TaskError {
                message: "no luck".into()
            }
        );

        let err = invoke(&input, &mut Vec::new(), |_: (u32, u32)| -> Plain<u32> {
            panic!("exploded {}", 7)
        })
        .unwrap_err();
        match err {
            Failure::Panic { message, location } => {
                assert_eq!(message, "exploded 7");
                assert!(location.unwrap().contains("invoke.rs"));
            }
            other => panic!("unexpected {other:?}"),
        }

        let err = invoke(&[0xff], &mut Vec::new(), |_: (String, u64)| Plain(1u8)).unwrap_err();
        assert!(matches!(err, Failure::Decode { .. }));
    }

    #[test]
    fn validator_decodes_both_replicas() {
        fn close(a: &f64, b: &f64) -> bool {
            (a - b).abs() < 1e-6
        }
        let one = crate::wire::encode_payload(&1.0f64);
        let near = crate::wire::encode_payload(&1.000_000_1f64);
        let far = crate::wire::encode_payload(&2.0f64);
        assert_eq!(validate(&one, &near, close), Ok(true));
        assert_eq!(validate(&one, &far, close), Ok(false));
        assert!(
            validate(&one, &[1, 2], close)
                .unwrap_err()
                .contains("second replica")
        );
    }
}
