//! `fhir-bulk token`: a signed HS256 bearer token for development and demos.

use std::process::ExitCode;

use anyhow::Context;
use bulk_core::settings::{AuthSettings, Settings};
use bulk_core::Role;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde::Serialize;

/// Shortest shared secret the API starts with (RFC 7518 §3.2: at least the
/// hash size); minting with a shorter one would give tokens nothing accepts.
const MIN_HS256_SECRET: usize = 32;

/// Arguments of `token`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Claims: sub, role, patient (when given), iat, exp = now + ttl, and iss / aud, which
default to auth.issuer / auth.audience when those are configured.

Example: TOKEN=$(fhir-bulk token --sub alice --role patient --patient seed-p0000000)")]
pub(crate) struct TokenArgs {
    /// The token's subject (`sub`): the user who owns the exports they start.
    #[arg(long, value_name = "SUB")]
    sub: String,
    /// `admin` exports everything; `patient` only their own compartment.
    #[arg(long, value_enum)]
    role: TokenRole,
    /// The patient id a patient user may export (`patient` claim); without it
    /// the API uses `sub`. Only with `--role patient`.
    #[arg(long, value_name = "ID")]
    patient: Option<String>,
    /// Lifetime in seconds (`exp` = now + ttl).
    #[arg(long, value_name = "SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    ttl_secs: u64,
    /// `iss` claim [default: auth.issuer, if configured].
    #[arg(long, value_name = "ISS")]
    issuer: Option<String>,
    /// `aud` claim [default: auth.audience, if configured].
    #[arg(long, value_name = "AUD")]
    audience: Option<String>,
}

/// `--role` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum TokenRole {
    /// May export everything.
    Admin,
    /// May export only their own compartment.
    Patient,
}

impl From<TokenRole> for Role {
    fn from(r: TokenRole) -> Self {
        match r {
            TokenRole::Admin => Role::Admin,
            TokenRole::Patient => Role::Patient,
        }
    }
}

/// The claims the API reads (see `bulk_api::Claims`), plus `iat`, `iss` and `aud`.
#[derive(Debug, PartialEq, Eq, Serialize)]
struct TokenClaims {
    sub: String,
    /// Serialised lower-case, as the API expects (`admin` / `patient`).
    role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    patient: Option<String>,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
}

/// Prints the token on stdout, alone, so `$(fhir-bulk token ...)` captures it.
pub(crate) fn run(args: &TokenArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let now = u64::try_from(now).context("the system clock is before 1970")?;
    let claims = build_claims(args, &settings.auth, now)?;
    println!("{}", sign(&claims, &settings.auth)?);
    Ok(ExitCode::SUCCESS)
}

/// A token for `sub` with `role` (and `patient`), valid for `ttl_secs`; what `dev` prints.
pub(crate) fn mint(
    auth: &AuthSettings,
    sub: &str,
    role: Role,
    patient: Option<&str>,
    ttl_secs: u64,
) -> anyhow::Result<String> {
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).context("clock before 1970")?;
    let claims = TokenClaims {
        sub: sub.to_owned(),
        role,
        patient: patient.map(str::to_owned),
        iat: now,
        exp: now.checked_add(ttl_secs).context("ttl too large")?,
        iss: auth.issuer.clone(),
        aud: auth.audience.clone(),
    };
    sign(&claims, auth)
}

/// The claims for `args` at `now` (seconds since the epoch).
fn build_claims(args: &TokenArgs, auth: &AuthSettings, now: u64) -> anyhow::Result<TokenClaims> {
    // The API refuses an empty subject; better to say so here than mint a dud.
    if args.sub.trim().is_empty() {
        anyhow::bail!("--sub must not be empty");
    }
    if args.patient.is_some() && args.role != TokenRole::Patient {
        anyhow::bail!("--patient applies only to --role patient (an admin is not scoped to a patient)");
    }
    let exp = now.checked_add(args.ttl_secs).context("--ttl-secs is too large")?;
    Ok(TokenClaims {
        sub: args.sub.clone(),
        role: args.role.into(),
        patient: args.patient.clone(),
        iat: now,
        exp,
        iss: args.issuer.clone().or_else(|| auth.issuer.clone()),
        aud: args.audience.clone().or_else(|| auth.audience.clone()),
    })
}

/// Signs with the configured shared secret, refusing one the API would refuse.
fn sign(claims: &TokenClaims, auth: &AuthSettings) -> anyhow::Result<String> {
    let secret = auth.hs256_secret.as_ref().context(
        "no shared secret configured: set BULK__AUTH__HS256_SECRET (or auth.hs256_secret in the BULK_CONFIG file)",
    )?;
    let secret = secret.expose_secret().as_bytes();
    if secret.len() < MIN_HS256_SECRET {
        anyhow::bail!("auth.hs256_secret must be at least {MIN_HS256_SECRET} bytes; the API refuses shorter ones");
    }
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).context("signing the token")
}

#[cfg(test)]
mod tests {
    use bulk_api::Verifier;
    use secrecy::SecretString;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-cli-test";
    const NOW: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn args(role: TokenRole) -> TokenArgs {
        TokenArgs { sub: "alice".into(), role, patient: None, ttl_secs: 3600, issuer: None, audience: None }
    }

    fn auth(issuer: Option<&str>, audience: Option<&str>) -> AuthSettings {
        AuthSettings {
            hs256_secret: Some(SecretString::from(SECRET)),
            issuer: issuer.map(Into::into),
            audience: audience.map(Into::into),
            ..Default::default()
        }
    }

    fn now() -> u64 {
        u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).expect("clock after 1970")
    }

    #[test]
    fn exp_is_now_plus_ttl_and_iat_is_now() {
        let c = build_claims(&TokenArgs { ttl_secs: 90, ..args(TokenRole::Admin) }, &auth(None, None), NOW)
            .expect("claims");
        assert_eq!((c.iat, c.exp), (NOW, NOW + 90));
    }

    #[test]
    fn claims_serialise_with_lower_case_role_and_without_absent_claims() {
        let c = build_claims(&args(TokenRole::Admin), &auth(None, None), NOW).expect("claims");
        let json = serde_json::to_value(&c).expect("serialises");
        assert_eq!(json, serde_json::json!({"sub": "alice", "role": "admin", "iat": NOW, "exp": NOW + 3600}));
    }

    #[test]
    fn issuer_and_audience_default_to_the_configured_ones_and_flags_override_them() {
        let configured = auth(Some("https://idp"), Some("fhir-bulk"));
        let c = build_claims(&args(TokenRole::Admin), &configured, NOW).expect("claims");
        assert_eq!((c.iss.as_deref(), c.aud.as_deref()), (Some("https://idp"), Some("fhir-bulk")));
        let flags = TokenArgs { issuer: Some("other".into()), audience: Some("aud2".into()), ..args(TokenRole::Admin) };
        let c = build_claims(&flags, &configured, NOW).expect("claims");
        assert_eq!((c.iss.as_deref(), c.aud.as_deref()), (Some("other"), Some("aud2")));
    }

    #[test]
    fn a_patient_claim_is_refused_on_an_admin_token_and_an_empty_sub_is_refused() {
        let admin_with_patient = TokenArgs { patient: Some("p1".into()), ..args(TokenRole::Admin) };
        assert!(build_claims(&admin_with_patient, &auth(None, None), NOW).is_err());
        let no_sub = TokenArgs { sub: " ".into(), ..args(TokenRole::Patient) };
        assert!(build_claims(&no_sub, &auth(None, None), NOW).is_err());
    }

    #[test]
    fn an_overflowing_ttl_is_an_error_not_a_wrapped_expiry() {
        let huge = TokenArgs { ttl_secs: u64::MAX, ..args(TokenRole::Admin) };
        assert!(build_claims(&huge, &auth(None, None), NOW).is_err());
    }

    #[test]
    fn signing_needs_a_configured_secret_of_at_least_32_bytes() {
        let c = build_claims(&args(TokenRole::Admin), &auth(None, None), NOW).expect("claims");
        assert!(sign(&c, &AuthSettings::default()).is_err());
        let short = AuthSettings { hs256_secret: Some(SecretString::from("too-short")), ..Default::default() };
        assert!(sign(&c, &short).is_err());
    }

    #[test]
    fn a_minted_patient_token_is_accepted_by_the_api_verifier() {
        let settings = auth(Some("https://idp"), Some("fhir-bulk"));
        let a = TokenArgs { patient: Some("seed-p0000001".into()), ..args(TokenRole::Patient) };
        let token = sign(&build_claims(&a, &settings, now()).expect("claims"), &settings).expect("signs");
        let principal = Verifier::from_settings(&settings).expect("verifier").verify(&token).expect("accepted");
        assert_eq!(principal.subject, "alice");
        assert_eq!(principal.role, Role::Patient);
        assert_eq!(principal.patient_id.as_deref(), Some("seed-p0000001"));
    }

    #[test]
    fn a_minted_admin_token_is_accepted_by_the_api_verifier() {
        let settings = auth(None, None);
        let token =
            sign(&build_claims(&args(TokenRole::Admin), &settings, now()).expect("claims"), &settings).expect("signs");
        let principal = Verifier::from_settings(&settings).expect("verifier").verify(&token).expect("accepted");
        assert_eq!((principal.subject.as_str(), principal.role), ("alice", Role::Admin));
    }
}
