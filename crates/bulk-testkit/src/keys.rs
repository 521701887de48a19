//! Private keys of the SMART backend clients tests register (PKCS#8 PEM,
//! made with `openssl genpkey`). Committed rather than generated so tests do
//! not spend seconds on RSA key generation; they protect nothing.

/// An RSA 2048 key (the tests sign RS384 assertions with it).
pub const CLIENT_RSA_PEM: &str = include_str!("../keys/client-rsa.pem");
/// An EC P-384 key (ES384 assertions).
pub const CLIENT_EC384_PEM: &str = include_str!("../keys/client-ec384.pem");
/// An RSA key no client registers: assertions signed with it must fail.
pub const OTHER_RSA_PEM: &str = include_str!("../keys/other-rsa.pem");
