//! The rule book both envelope layers act on (`fender::classify`), from the outside: one walk
//! of a source chain gives the class and the error response.

use std::error::Error as StdError;
use std::{fmt, io};

use fender::ApiError;
use fender::classify::{
    Class, Rejection, classify_error, classify_status, diagnose, find_api_error,
};
use http::StatusCode;

#[test]
fn statuses_classify_per_the_contract() {
    for n in 100..=599u16 {
        let class = classify_status(StatusCode::from_u16(n).unwrap());
        let retryable = matches!(n, 429 | 500 | 502 | 503 | 504);
        let failure = matches!(n, 500 | 502 | 503 | 504);
        assert_eq!(class.is_retryable(), retryable, "{n}");
        assert_eq!(class.is_failure(), failure, "{n}");
    }
}

#[derive(Debug)]
struct Wrap(Box<dyn StdError + Send + Sync>);
impl fmt::Display for Wrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wrapped")
    }
}
impl StdError for Wrap {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.0)
    }
}

#[test]
fn io_errors_classify_by_kind_at_any_depth() {
    let wrap = |kind: io::ErrorKind| Wrap(Box::new(io::Error::from(kind)));
    let refused = wrap(io::ErrorKind::ConnectionRefused);
    assert_eq!(classify_error(&refused), Class::ConnectFailed);
    assert!(classify_error(&refused).never_reached_upstream());
    let reset = wrap(io::ErrorKind::ConnectionReset);
    assert_eq!(classify_error(&reset), Class::Transport);
    let other = wrap(io::ErrorKind::PermissionDenied);
    assert_eq!(classify_error(&other), Class::OtherError);
    assert!(!Class::OtherError.is_retryable());
    assert!(Class::OtherError.is_failure());
}

#[test]
fn middleware_errors_classify() {
    let elapsed = tower::timeout::error::Elapsed::new();
    assert_eq!(classify_error(&elapsed), Class::Timeout);
    let overloaded = tower::load_shed::error::Overloaded::new();
    assert_eq!(classify_error(&overloaded), Class::Rejected);
    assert!(!Class::Rejected.is_retryable() && !Class::Rejected.is_failure());
    let rejected = Wrap(Box::new(Rejection::new("full")));
    assert_eq!(classify_error(&rejected), Class::Rejected);
}

#[test]
fn api_errors_classify_by_origin() {
    assert_eq!(
        classify_error(&ApiError::service_unavailable("down")),
        Class::ServerError
    );
    assert_eq!(
        classify_error(&ApiError::not_found("gone")),
        Class::ClientError
    );
    let boxed: fender::BoxError = Box::new(ApiError::bad_gateway("upstream"));
    assert_eq!(classify_error(&*boxed), Class::ServerError);
}

#[test]
fn one_walk_gives_the_class_and_the_error_it_found() {
    let api = ApiError::conflict("stale").with_request_id("r-1");
    let wrapped = Wrap(Box::new(api));
    let found = diagnose(&wrapped);
    assert_eq!(found.class(), Class::ClientError);
    assert_eq!(found.api_error().unwrap().request_id(), Some("r-1"));
    assert_eq!(find_api_error(&wrapped).unwrap().status(), 409);
    // A precise cause under an imprecise one wins; the ApiError built agrees with it.
    let wrapped = Wrap(Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)));
    let refused = diagnose(&wrapped);
    assert_eq!(refused.class(), Class::ConnectFailed);
    assert!(refused.api_error().is_none());
    let api = refused.to_api_error();
    assert_eq!(
        (api.status().as_u16(), api.class()),
        (503, Class::ConnectFailed)
    );
    assert!(find_api_error(&io::Error::other("x")).is_none());
}

#[test]
fn a_source_chain_that_loops_ends() {
    #[derive(Debug)]
    struct Loop;
    impl fmt::Display for Loop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("loop")
        }
    }
    impl StdError for Loop {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&Loop)
        }
    }
    assert_eq!(classify_error(&Loop), Class::OtherError);
    assert!(find_api_error(&Loop).is_none());
}

#[test]
fn middleware_errors_map_to_their_error_responses() {
    let timeout = ApiError::from_error(Box::new(tower::timeout::error::Elapsed::new()));
    assert_eq!(timeout.status(), 504);
    assert_eq!(timeout.code(), &fender::ErrorCode::Timeout);
    let shed = ApiError::from_error(Box::new(tower::load_shed::error::Overloaded::new()));
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.retry_after(), Some(std::time::Duration::from_secs(1)));
    assert_eq!(shed.origin(), fender::error::Origin::Local);
    assert!(!shed.is_retryable());
    let refused = ApiError::from_error(Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)));
    assert_eq!(refused.code(), &fender::ErrorCode::ServiceUnavailable);
    assert_eq!(refused.origin(), fender::error::Origin::Transport);
    assert!(refused.is_retryable());
}

/// 600, 799 and 999 are valid `StatusCode`s to `http`, and no HTTP status at all.
fn beyond_599() -> [StatusCode; 3] {
    [600, 799, 999].map(|n| StatusCode::from_u16(n).unwrap())
}

#[test]
fn statuses_past_599_are_failures_that_are_not_retried() {
    for status in beyond_599() {
        let class = classify_status(status);
        assert!(class.is_failure(), "{status}: {class}");
        assert!(!class.is_retryable(), "{status}: {class}");
        let api = ApiError::from_status(status);
        assert_eq!(api.class(), class, "the error of the status agrees");
        assert!(!api.is_retryable());
    }
}

#[test]
fn a_501_carries_a_retryable_code_but_is_not_retried_itself() {
    let not_implemented = ApiError::from_status(StatusCode::NOT_IMPLEMENTED);
    assert_eq!(not_implemented.code(), &fender::ErrorCode::InternalError);
    assert!(
        not_implemented.code().is_retryable(),
        "the verdict on the code's own status, 500"
    );
    assert!(
        !not_implemented.is_retryable(),
        "the verdict on this error, a 501"
    );
    assert_eq!(not_implemented.class(), Class::PermanentServerError);
}
