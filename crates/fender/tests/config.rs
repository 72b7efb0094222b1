//! Integration tests of `fender::config`: settings from TOML files reach the builders, every
//! value a builder would refuse is a `ConfigError` naming its field, and format errors name
//! the key.

use std::fmt::Debug;
use std::time::Duration;

use fender::circuit_breaker::{CircuitBreakerLayer, FailureRate};
use fender::config::{
    BreakerConfig, ClientConfig, ConfigError, DecodeConfig, EnvelopeConfig, RetryConfig,
};
use fender::envelope::{DecodeEnvelopeLayer, ErrorEnvelopeLayer};
use fender::retry::{Jitter, RetryBudget};
use fender::{ClientLayer, RetryLayer};
use serde::de::DeserializeOwned;

fn parse<T: DeserializeOwned>(file: &str) -> T {
    toml::from_str(file).unwrap_or_else(|err| panic!("{file:?} should parse: {err}"))
}

fn parse_err<T: DeserializeOwned + Debug>(file: &str) -> String {
    toml::from_str::<T>(file)
        .expect_err("the file should be refused")
        .to_string()
}

fn debug<T: Debug>(value: T) -> String {
    format!("{value:?}")
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

mod defaults {
    use super::*;

    #[test]
    fn an_empty_file_builds_each_builders_defaults() {
        let retry = parse::<RetryConfig>("").layer().unwrap();
        assert_eq!(debug(retry), debug(RetryLayer::new()));
        let breaker = parse::<BreakerConfig>("").layer().unwrap();
        assert_eq!(debug(breaker), debug(CircuitBreakerLayer::new()));
        let client = parse::<ClientConfig>("").layer().unwrap();
        assert_eq!(debug(client), debug(ClientLayer::new()));
        let envelope = parse::<EnvelopeConfig>("").layer().unwrap();
        assert_eq!(debug(envelope), debug(ErrorEnvelopeLayer::new()));
        let decode = parse::<DecodeConfig>("").layer().unwrap();
        assert_eq!(debug(decode), debug(DecodeEnvelopeLayer::new()));
    }

    #[test]
    fn the_effective_settings_of_an_empty_file_are_the_builders_defaults() {
        let retry = RetryConfig::default().effective().unwrap();
        assert_eq!(debug(retry.layer().unwrap()), debug(RetryLayer::new()));
        let breaker = BreakerConfig::default().effective().unwrap();
        assert_eq!(
            debug(breaker.layer().unwrap()),
            debug(CircuitBreakerLayer::new())
        );
        let client = ClientConfig::default().effective().unwrap();
        assert_eq!(debug(client.layer().unwrap()), debug(ClientLayer::new()));
        let envelope = EnvelopeConfig::default().effective().unwrap();
        assert_eq!(
            debug(envelope.layer().unwrap()),
            debug(ErrorEnvelopeLayer::new())
        );
        let decode = DecodeConfig::default().effective().unwrap();
        assert_eq!(
            debug(decode.layer().unwrap()),
            debug(DecodeEnvelopeLayer::new())
        );
    }

    #[test]
    fn the_effective_settings_fill_every_default_and_print_as_toml_that_reads_back() {
        let client = parse::<ClientConfig>("[retry]\nmax_attempts = 5")
            .effective()
            .unwrap();
        let printed = toml::to_string(&client).unwrap();
        for line in [
            "attempt_timeout = \"10s\"",
            "max_keys = 1024",
            "max_attempts = 5",
            "base_delay = \"1s\"",
            "jitter = \"proportional\"",
            "window = \"10s\"",
            "consecutive_failures = 5",
            "open_duration = \"30s\"",
            "ramp_start_share = 0.1",
            "body_timeout = \"10s\"",
        ] {
            assert!(printed.contains(line), "{line} is missing from\n{printed}");
        }
        assert_eq!(parse::<ClientConfig>(&printed), client);
        assert_eq!(client.effective().unwrap(), client, "a fixed point");
    }

    #[test]
    fn the_effective_settings_build_the_same_layer_as_the_file() {
        for file in [
            "[retry]\nmax_attempts = 5\nno_budget = true\ndeadline = \"3s\"",
            "[breaker]\nstrict_consecutive = true\n[breaker.failure_rate]\ncalls = 8",
            "[breaker]\nno_ramp = true\nmax_open_duration = \"1m\"\nseed = 3",
            "no_throttle = true\nbody_timeout = \"1s\"\n[retry.budget]\nratio = 0.5",
        ] {
            let config: ClientConfig = parse(file);
            let effective = config.effective().unwrap();
            assert_eq!(
                debug(effective.layer().unwrap()),
                debug(config.layer().unwrap()),
                "{file}"
            );
        }
    }

    #[test]
    fn the_effective_settings_leave_out_what_is_switched_off() {
        let client = parse::<ClientConfig>(
            "no_breaker = true\nno_attempt_timeout = true\n[retry]\nno_budget = true",
        )
        .effective()
        .unwrap();
        assert_eq!(client.breaker, BreakerConfig::default());
        assert_eq!(client.attempt_timeout, None);
        assert_eq!(client.retry.budget, None);
        assert_eq!(
            parse::<ClientConfig>(&toml::to_string(&client).unwrap()),
            client
        );
    }
}

mod settings {
    use super::*;

    #[test]
    fn every_retry_setting_reaches_the_builder() {
        let config: RetryConfig = parse(
            r#"
            max_attempts = 4
            base_delay = "250ms"
            max_delay = "5s"
            jitter = "decorrelated"
            retry_after_cap = "2 minutes"
            retry_non_idempotent = true
            attempt_timeout = "1m30s"
            deadline = "20s"
            rng_seed = 7
            max_replay_body = 1024

            [budget]
            window = "30s"
            floor_per_sec = 1
            ratio = 0.1
            "#,
        );
        let expected = RetryLayer::new()
            .max_attempts(4)
            .base_delay(ms(250))
            .max_delay(secs(5))
            .jitter(Jitter::Decorrelated)
            .retry_after_cap(secs(120))
            .retry_non_idempotent(true)
            .attempt_timeout(secs(90))
            .deadline(secs(20))
            .rng_seed(7)
            .max_replay_body(1024)
            .budget(RetryBudget::new(secs(30), 1, 0.1));
        assert_eq!(debug(config.layer().unwrap()), debug(expected));
    }

    #[test]
    fn no_budget_removes_the_budget() {
        let config: RetryConfig = parse("no_budget = true");
        assert_eq!(
            debug(config.layer().unwrap()),
            debug(RetryLayer::new().no_budget())
        );
    }

    #[test]
    fn every_jitter_has_its_lowercase_name() {
        for (name, jitter) in [
            ("none", Jitter::None),
            ("full", Jitter::Full),
            ("equal", Jitter::Equal),
            ("decorrelated", Jitter::Decorrelated),
            ("proportional", Jitter::Proportional),
        ] {
            let config: RetryConfig = parse(&format!("jitter = \"{name}\""));
            assert_eq!(config.jitter, Some(jitter));
            assert!(toml::to_string(&config).unwrap().contains(name));
        }
    }

    #[test]
    fn every_breaker_setting_reaches_the_builder() {
        let config: BreakerConfig = parse(
            r#"
            consecutive_failures = 7
            strict_consecutive = true
            slow_call_threshold = "2s"
            open_duration = "10s"
            max_open_duration = "5m"
            half_open_probes = 2
            close_after = 4
            reopen_after = 2
            ramp = "20s"
            ramp_start_share = 0.25
            seed = 42
            max_keys = 64
            "#,
        );
        let expected = CircuitBreakerLayer::new()
            .consecutive_failures(7)
            .strict_consecutive()
            .slow_call_threshold(secs(2))
            .open_duration(secs(10))
            .max_open_duration(secs(300))
            .half_open_probes(2)
            .close_after(4)
            .reopen_after(2)
            .ramp(secs(20))
            .ramp_start_share(0.25)
            .seed(42)
            .max_keys(64);
        assert_eq!(debug(config.layer().unwrap()), debug(expected));
    }

    #[test]
    fn no_ramp_lets_all_traffic_through_on_close() {
        let config: BreakerConfig = parse("no_ramp = true");
        assert_eq!(
            debug(config.layer().unwrap()),
            debug(CircuitBreakerLayer::new().no_ramp())
        );
    }

    #[test]
    fn a_failure_rate_over_calls_or_over_a_period_reaches_the_builder() {
        let config: BreakerConfig =
            parse("[failure_rate]\ncalls = 100\nthreshold = 0.25\nmin_calls = 50");
        let expected = CircuitBreakerLayer::new()
            .failure_rate(FailureRate::count(100).threshold(0.25).min_calls(50));
        assert_eq!(debug(config.layer().unwrap()), debug(expected));

        let config: BreakerConfig = parse("[failure_rate]\nperiod = \"1 minute\"");
        let expected = CircuitBreakerLayer::new().failure_rate(FailureRate::time(secs(60)));
        assert_eq!(debug(config.layer().unwrap()), debug(expected));
    }

    #[test]
    fn the_effective_min_calls_of_a_small_count_window_is_the_window() {
        let config: BreakerConfig = parse("[failure_rate]\ncalls = 8");
        let rate = config.effective().unwrap().failure_rate.unwrap();
        assert_eq!((rate.min_calls, rate.threshold), (Some(8), Some(0.5)));
        assert_eq!(
            debug(config.layer().unwrap()),
            debug(CircuitBreakerLayer::new().failure_rate(FailureRate::count(8)))
        );
    }

    #[test]
    fn every_client_setting_reaches_the_builder() {
        let config: ClientConfig = parse(
            r#"
            attempt_timeout = "2s"
            body_timeout = "30s"
            no_throttle = true
            max_keys = 16

            [retry]
            max_attempts = 2

            [breaker]
            open_duration = "5s"
            "#,
        );
        let expected = ClientLayer::new()
            .retry(RetryLayer::new().max_attempts(2))
            .breaker(CircuitBreakerLayer::new().open_duration(secs(5)))
            .attempt_timeout(secs(2))
            .body_timeout(secs(30))
            .no_throttle()
            .max_keys(16);
        assert_eq!(debug(config.layer().unwrap()), debug(expected));
    }

    #[test]
    fn the_client_switches_remove_the_breaker_and_the_attempt_timeout() {
        let config: ClientConfig = parse("no_breaker = true\nno_attempt_timeout = true");
        let expected = ClientLayer::new().no_breaker().no_attempt_timeout();
        assert_eq!(debug(config.layer().unwrap()), debug(expected));
    }

    #[test]
    fn every_envelope_and_decode_setting_reaches_the_builder() {
        let config: EnvelopeConfig =
            parse("body_limit = 4096\nbody_timeout = \"500ms\"\nmax_message_len = 0");
        let expected = ErrorEnvelopeLayer::new()
            .body_limit(4096)
            .body_timeout(ms(500))
            .max_message_len(0);
        assert_eq!(debug(config.layer().unwrap()), debug(expected));

        let config: DecodeConfig =
            parse("body_limit = 4096\nbody_timeout = \"0s\"\ngenerate_request_id = false");
        let expected = DecodeEnvelopeLayer::new()
            .body_limit(4096)
            .body_timeout(Duration::ZERO)
            .generate_request_id(false);
        assert_eq!(debug(config.layer().unwrap()), debug(expected));
    }

    #[test]
    fn apply_to_keeps_the_callbacks_of_the_builder() {
        let config: RetryConfig = parse("max_attempts = 5");
        let layer = config
            .apply_to(RetryLayer::new().on_retry(|_, _, _| {}))
            .unwrap();
        let expected = RetryLayer::new().on_retry(|_, _, _| {}).max_attempts(5);
        assert_eq!(debug(&layer), debug(expected));
        assert!(debug(&layer).contains(r#"on_retry: Some("...")"#));

        let config: BreakerConfig = parse("close_after = 1");
        let layer = config
            .apply_to(CircuitBreakerLayer::new().on_state_change(|_| {}))
            .unwrap();
        assert!(debug(layer).contains("on_state_change: true"));
    }

    #[test]
    fn apply_to_keeps_the_builders_values_for_what_the_file_leaves_out() {
        let config: RetryConfig = parse("max_attempts = 5");
        let layer = config
            .apply_to(RetryLayer::new().deadline(secs(3)).rng_seed(1))
            .unwrap();
        let expected = RetryLayer::new()
            .deadline(secs(3))
            .rng_seed(1)
            .max_attempts(5);
        assert_eq!(debug(layer), debug(expected));
    }

    #[test]
    fn the_client_stack_keeps_the_callbacks_given_to_layer_with() {
        let config: ClientConfig = parse("[retry]\nmax_attempts = 2");
        let layer = config
            .layer_with(
                RetryLayer::new().on_retry(|_, _, _| {}),
                CircuitBreakerLayer::new().on_state_change(|_| {}),
            )
            .unwrap();
        let shown = debug(layer);
        assert!(shown.contains(r#"on_retry: Some("...")"#), "{shown}");
        assert!(shown.contains("on_state_change: true"), "{shown}");
        assert!(shown.contains("max_attempts: 2"), "{shown}");
    }

    #[test]
    fn the_largest_and_smallest_values_the_builders_take_are_taken() {
        for file in [
            "[retry]\nmax_attempts = 1\nbase_delay = \"0s\"\nmax_delay = \"0s\"",
            "[retry]\ndeadline = \"0s\"\nretry_after_cap = \"0s\"",
            "[retry.budget]\nwindow = \"10ms\"\nratio = 0.0\nfloor_per_sec = 0",
            "[retry.budget]\nwindow = \"1 day\"\nratio = 1.0",
            "[breaker]\nconsecutive_failures = 65535\nhalf_open_probes = 65535\nclose_after = 65535",
            "[breaker]\nconsecutive_failures = 1\nhalf_open_probes = 1\nclose_after = 1",
            "[breaker]\nopen_duration = \"365 days\"\nramp = \"24h\"\nramp_start_share = 1.0",
            "[breaker]\nopen_duration = \"1ns\"\nramp = \"1ns\"\nmax_open_duration = \"1ns\"",
            "[breaker.failure_rate]\ncalls = 65536\nmin_calls = 65536\nthreshold = 1.0",
            "[breaker.failure_rate]\ncalls = 1\nmin_calls = 1",
            "[breaker.failure_rate]\nperiod = \"10ms\"\nmin_calls = 1048575",
            "max_keys = 1\nattempt_timeout = \"1ns\"\nbody_timeout = \"1ns\"",
            "[decode]\nbody_limit = 1",
        ] {
            let config: ClientConfig = parse(file);
            if let Err(err) = config.layer() {
                panic!("{file:?} should build: {err}");
            }
        }
    }
}

mod durations {
    use super::*;

    #[test]
    fn durations_are_strings_for_people() {
        for (text, expected) in [
            ("1s", secs(1)),
            ("250ms", ms(250)),
            ("1m30s", secs(90)),
            ("2 minutes", secs(120)),
            ("1.5s", ms(1500)),
            ("PT2S", secs(2)),
            ("1 day", secs(86_400)),
        ] {
            let config: RetryConfig = parse(&format!("deadline = \"{text}\""));
            let expected = RetryLayer::new().deadline(expected);
            assert_eq!(debug(config.layer().unwrap()), debug(expected), "{text}");
        }
    }

    #[test]
    fn a_bare_number_is_refused_with_the_format_that_is_expected() {
        let err = parse_err::<ClientConfig>("attempt_timeout = 5");
        assert!(err.contains("line 1"), "{err}");
        assert!(
            err.contains(r#"expected a duration string such as "1s", "250ms""#),
            "{err}"
        );
    }

    #[test]
    fn a_duration_that_does_not_parse_is_refused_where_it_is_written() {
        let err = parse_err::<ClientConfig>("[retry]\nmax_attempts = 2\ndeadline = \"soon\"");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("deadline = \"soon\""), "{err}");
        assert!(err.contains(r#"invalid duration "soon""#), "{err}");
        let err = parse_err::<ClientConfig>("[breaker]\nopen_duration = \"1 month\"");
        assert!(err.contains("no fixed length"), "{err}");
    }

    #[test]
    fn durations_print_in_the_format_they_are_read_in() {
        let config: RetryConfig = parse("base_delay = \"1m30s\"\nmax_delay = \"1h 250ms\"");
        let printed = toml::to_string(&config).unwrap();
        assert_eq!(
            printed,
            "base_delay = \"1m 30s\"\nmax_delay = \"1h 250ms\"\n"
        );
    }
}

mod unknown_keys {
    use super::*;

    /// Checks that `file` is refused for `key`, with the expected keys listed.
    fn refused_for<T: DeserializeOwned + Debug>(file: &str, key: &str, a_valid_key: &str) {
        let err = toml::from_str::<T>(file).expect_err("the key should be refused");
        let message = err.message();
        assert!(
            message.starts_with(&format!("unknown field `{key}`, expected one of ")),
            "{message}"
        );
        assert!(message.contains(&format!("`{a_valid_key}`")), "{message}");
        assert!(
            err.to_string().contains(key),
            "the snippet shows the key: {err}"
        );
    }

    #[test]
    fn a_misspelt_key_is_named_and_the_expected_keys_are_listed() {
        refused_for::<RetryConfig>("max_atempts = 4", "max_atempts", "max_attempts");
        refused_for::<RetryConfig>("[budget]\nratoi = 0.1", "ratoi", "ratio");
        refused_for::<BreakerConfig>("open_duraton = \"1s\"", "open_duraton", "open_duration");
        refused_for::<BreakerConfig>("[failure_rate]\nwindow = 5", "window", "calls");
        refused_for::<EnvelopeConfig>("body_limt = 1", "body_limt", "body_limit");
        refused_for::<DecodeConfig>("request_id = true", "request_id", "generate_request_id");
        refused_for::<ClientConfig>("timeout = \"1s\"", "timeout", "attempt_timeout");
        refused_for::<ClientConfig>("[retry]\nmax_atempts = 4", "max_atempts", "max_attempts");
        refused_for::<ClientConfig>("[breaker]\nthreshold = 0.5", "threshold", "failure_rate");
        refused_for::<ClientConfig>("[decode]\nlimit = 1", "limit", "body_limit");
        refused_for::<ClientConfig>("[envelope]\nbody_limit = 1", "envelope", "decode");
    }

    #[test]
    fn the_error_says_where_the_key_is() {
        let err = parse_err::<ClientConfig>("attempt_timeout = \"1s\"\n\n[retry]\nmax_atempts = 4");
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("max_atempts = 4"), "{err}");
    }

    #[test]
    fn an_unknown_jitter_lists_the_known_ones() {
        let err = parse_err::<RetryConfig>("jitter = \"random\"");
        assert!(
            err.contains(
                "unknown variant `random`, expected one of `none`, `full`, `equal`, \
                 `decorrelated`, `proportional`"
            ),
            "{err}"
        );
    }

    #[test]
    fn other_formats_refuse_unknown_keys_too() {
        let err = serde_json::from_str::<ClientConfig>(r#"{"retry": {"max_atempts": 4}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("unknown field `max_atempts`"), "{err}");
    }
}

mod rejected {
    use super::*;

    /// Checks that `file` parses but does not convert, for `field`, with `reason` in the error.
    fn refused(error: Result<impl Debug, ConfigError>, file: &str, field: &str, reason: &str) {
        let err = error.expect_err(&format!("{file:?} should be refused"));
        assert_eq!(err.field(), field, "{file:?}: {err}");
        assert!(err.reason().contains(reason), "{file:?}: {err}");
        assert_eq!(
            err.to_string(),
            format!("{}: {}", err.field(), err.reason())
        );
    }

    #[test]
    fn every_value_a_client_builder_would_refuse_is_an_error_naming_its_field() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[retry]\nmax_attempts = 0",
                "retry.max_attempts",
                "at least 1 (the first attempt), got 0",
            ),
            (
                "[retry]\nbase_delay = \"-1s\"",
                "retry.base_delay",
                "must not be negative, got 1s ago",
            ),
            (
                "[retry]\nmax_delay = \"-1s\"",
                "retry.max_delay",
                "must not be negative",
            ),
            (
                "[retry]\nbase_delay = \"1m\"",
                "retry.base_delay",
                "must not exceed max_delay (30s), got 1m",
            ),
            (
                "[retry]\nmax_delay = \"500ms\"",
                "retry.max_delay",
                "must not be shorter than base_delay (1s), got 500ms",
            ),
            (
                "[retry]\nbase_delay = \"2s\"\nmax_delay = \"1s\"",
                "retry.base_delay",
                "must not exceed max_delay (1s)",
            ),
            (
                "[retry]\nretry_after_cap = \"1s ago\"",
                "retry.retry_after_cap",
                "must not be negative",
            ),
            (
                "[retry]\ndeadline = \"-5s\"",
                "retry.deadline",
                "must not be negative",
            ),
            (
                "[retry]\nattempt_timeout = \"1s\"",
                "retry.attempt_timeout",
                "set attempt_timeout at the top",
            ),
            (
                "[retry]\nno_budget = true\n[retry.budget]\nratio = 0.1",
                "retry.budget",
                "cannot be set together with no_budget = true",
            ),
            (
                "[retry.budget]\nwindow = \"5ms\"",
                "retry.budget.window",
                "must be at least 10ms, got 5ms",
            ),
            (
                "[retry.budget]\nwindow = \"2 days\"",
                "retry.budget.window",
                "must be at most 24h, got 48h",
            ),
            (
                "[retry.budget]\nwindow = \"-1s\"",
                "retry.budget.window",
                "must not be negative",
            ),
            (
                "[retry.budget]\nratio = 1.5",
                "retry.budget.ratio",
                "must be 0 to 1, got 1.5",
            ),
            (
                "[retry.budget]\nratio = -0.1",
                "retry.budget.ratio",
                "must be 0 to 1",
            ),
            (
                "[retry.budget]\nratio = nan",
                "retry.budget.ratio",
                "must be 0 to 1, got NaN",
            ),
            (
                "[breaker]\nconsecutive_failures = 0",
                "breaker.consecutive_failures",
                "must be 1 to 65535, got 0",
            ),
            (
                "[breaker]\nconsecutive_failures = 65536",
                "breaker.consecutive_failures",
                "must be 1 to 65535, got 65536",
            ),
            (
                "[breaker]\nconsecutive_failures = 3\n[breaker.failure_rate]\ncalls = 10",
                "breaker.failure_rate",
                "cannot be set together with consecutive_failures",
            ),
            (
                "[breaker]\nslow_call_threshold = \"0s\"",
                "breaker.slow_call_threshold",
                "must be positive, got 0s",
            ),
            (
                "[breaker]\nslow_call_threshold = \"-1s\"",
                "breaker.slow_call_threshold",
                "must not be negative",
            ),
            (
                "[breaker]\nopen_duration = \"0s\"",
                "breaker.open_duration",
                "must be positive",
            ),
            (
                "[breaker]\nopen_duration = \"400 days\"",
                "breaker.open_duration",
                "must be at most 8760h, got 9600h",
            ),
            (
                "[breaker]\nmax_open_duration = \"0s\"",
                "breaker.max_open_duration",
                "must be positive",
            ),
            (
                "[breaker]\nhalf_open_probes = 0",
                "breaker.half_open_probes",
                "must be 1 to 65535",
            ),
            (
                "[breaker]\nhalf_open_probes = 70000",
                "breaker.half_open_probes",
                "must be 1 to 65535, got 70000",
            ),
            (
                "[breaker]\nclose_after = 0",
                "breaker.close_after",
                "must be 1 to 65535",
            ),
            (
                "[breaker]\nclose_after = 65536",
                "breaker.close_after",
                "must be 1 to 65535",
            ),
            (
                "[breaker]\nreopen_after = 0",
                "breaker.reopen_after",
                "must be 1 to 65535",
            ),
            (
                "[breaker]\nramp = \"0s\"",
                "breaker.ramp",
                "must be positive",
            ),
            (
                "[breaker]\nramp = \"25h\"",
                "breaker.ramp",
                "must be at most 24h, got 25h",
            ),
            (
                "[breaker]\nramp_start_share = 0.0",
                "breaker.ramp_start_share",
                "more than 0 and at most 1, got 0",
            ),
            (
                "[breaker]\nramp_start_share = 1.5",
                "breaker.ramp_start_share",
                "more than 0 and at most 1, got 1.5",
            ),
            (
                "[breaker]\nno_ramp = true\nramp = \"5s\"",
                "breaker.ramp",
                "cannot be set together with no_ramp = true",
            ),
            (
                "[breaker]\nno_ramp = true\nramp_start_share = 0.5",
                "breaker.ramp_start_share",
                "cannot be set together with no_ramp = true",
            ),
            (
                "[breaker]\nmax_keys = 10",
                "breaker.max_keys",
                "set max_keys at the top",
            ),
            (
                "[breaker.failure_rate]\nthreshold = 0.5",
                "breaker.failure_rate.calls",
                "the window is missing",
            ),
            (
                "[breaker.failure_rate]\ncalls = 10\nperiod = \"1s\"",
                "breaker.failure_rate.calls",
                "cannot be set together with period",
            ),
            (
                "[breaker.failure_rate]\ncalls = 0",
                "breaker.failure_rate.calls",
                "must be 1 to 65536, got 0",
            ),
            (
                "[breaker.failure_rate]\ncalls = 65537",
                "breaker.failure_rate.calls",
                "must be 1 to 65536",
            ),
            (
                "[breaker.failure_rate]\nperiod = \"5ms\"",
                "breaker.failure_rate.period",
                "must be at least 10ms",
            ),
            (
                "[breaker.failure_rate]\nperiod = \"-1m\"",
                "breaker.failure_rate.period",
                "must not be negative",
            ),
            (
                "[breaker.failure_rate]\ncalls = 10\nthreshold = 0.0",
                "breaker.failure_rate.threshold",
                "more than 0 and at most 1",
            ),
            (
                "[breaker.failure_rate]\ncalls = 10\nthreshold = 1.1",
                "breaker.failure_rate.threshold",
                "more than 0 and at most 1",
            ),
            (
                "[breaker.failure_rate]\ncalls = 10\nmin_calls = 0",
                "breaker.failure_rate.min_calls",
                "must be 1 to 1048575, got 0",
            ),
            (
                "[breaker.failure_rate]\nperiod = \"1m\"\nmin_calls = 1048576",
                "breaker.failure_rate.min_calls",
                "must be 1 to 1048575",
            ),
            (
                "[breaker.failure_rate]\ncalls = 10\nmin_calls = 11",
                "breaker.failure_rate.min_calls",
                "can never be reached in a window of 10 calls, got 11",
            ),
            (
                "no_breaker = true\n[breaker]\nopen_duration = \"1s\"",
                "breaker",
                "cannot be set together with no_breaker = true",
            ),
            (
                "attempt_timeout = \"0s\"",
                "attempt_timeout",
                "must be positive",
            ),
            (
                "attempt_timeout = \"-1s\"",
                "attempt_timeout",
                "must not be negative",
            ),
            (
                "attempt_timeout = \"1s\"\nno_attempt_timeout = true",
                "attempt_timeout",
                "cannot be set together with no_attempt_timeout = true",
            ),
            ("body_timeout = \"0s\"", "body_timeout", "must be positive"),
            ("max_keys = 0", "max_keys", "must be 1 to"),
            (
                "[decode]\nbody_limit = 0",
                "decode.body_limit",
                "must be 1 to",
            ),
            (
                "[decode]\nbody_timeout = \"-1s\"",
                "decode.body_timeout",
                "must not be negative",
            ),
        ];
        for &(file, field, reason) in cases {
            let config: ClientConfig = parse(file);
            refused(config.layer(), file, field, reason);
            refused(config.effective(), file, field, reason);
        }
    }

    #[test]
    fn the_standalone_layers_refuse_what_their_builders_would() {
        let file = "attempt_timeout = \"0s\"";
        refused(
            parse::<RetryConfig>(file).layer(),
            file,
            "attempt_timeout",
            "must be positive",
        );
        let file = "max_keys = 0";
        refused(
            parse::<BreakerConfig>(file).layer(),
            file,
            "max_keys",
            "must be 1 to",
        );
        let file = "body_limit = 0";
        refused(
            parse::<EnvelopeConfig>(file).layer(),
            file,
            "body_limit",
            "must be 1 to",
        );
        let file = "body_timeout = \"-2s\"";
        refused(
            parse::<EnvelopeConfig>(file).layer(),
            file,
            "body_timeout",
            "must not be negative, got 2s ago",
        );
        let file = "[budget]\nratio = 2.0";
        refused(
            parse::<RetryConfig>(file).apply_to(RetryLayer::new()),
            file,
            "budget.ratio",
            "0 to 1",
        );
    }

    #[test]
    fn the_error_is_a_std_error_that_says_field_and_reason() {
        let config: ClientConfig = parse("[retry]\nmax_attempts = 0");
        let err: Box<dyn std::error::Error> = Box::new(config.layer().unwrap_err());
        assert_eq!(
            err.to_string(),
            "retry.max_attempts: must be at least 1 (the first attempt), got 0"
        );
    }
}

mod end_to_end {
    use super::*;
    use bytes::Bytes;
    use fender::ErrorCode;
    use fender_testkit::{Plan, Reply, Upstream};
    use http::{Request, StatusCode};
    use http_body_util::Full;
    use tokio::time::Instant;
    use tower::{Layer, ServiceExt};

    fn get() -> Request<Full<Bytes>> {
        Request::get("http://api.test/")
            .body(Full::new(Bytes::new()))
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_from_a_file_retries_on_the_schedule_the_file_sets() {
        let config: ClientConfig =
            parse("[retry]\nmax_attempts = 3\nbase_delay = \"100ms\"\njitter = \"none\"");
        let upstream = Upstream::new(Plan::sequence([
            Reply::status(503),
            Reply::status(503),
            Reply::ok(),
        ]));
        let svc = config.layer().unwrap().layer(upstream.service());
        let start = Instant::now();
        let res = svc.oneshot(get()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(upstream.count(), 3);
        assert_eq!(start.elapsed(), ms(100 + 200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_from_a_file_times_attempts_out_as_the_file_says() {
        let config: ClientConfig = parse("attempt_timeout = \"250ms\"\n[retry]\nmax_attempts = 1");
        let upstream = Upstream::new(Reply::hang());
        let svc = config.layer().unwrap().layer(upstream.service());
        let start = Instant::now();
        let err = svc.oneshot(get()).await.unwrap_err();
        assert_eq!(err.code(), &ErrorCode::Timeout);
        assert_eq!(upstream.count(), 1);
        assert_eq!(start.elapsed(), ms(250));
    }

    #[tokio::test(start_paused = true)]
    async fn the_decode_table_reaches_the_client_stack() {
        let upstream = Upstream::new(Reply::ok());
        let config: ClientConfig = parse("[decode]\ngenerate_request_id = false");
        let svc = config.layer().unwrap().layer(upstream.service());
        svc.oneshot(get()).await.unwrap();
        let config: ClientConfig = parse("");
        let svc = config.layer().unwrap().layer(upstream.service());
        svc.oneshot(get()).await.unwrap();
        let received = upstream.received();
        assert!(!received[0].headers.contains_key("x-request-id"));
        assert!(received[1].headers.contains_key("x-request-id"));
    }
}
