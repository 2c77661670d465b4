// Package auth owns who a caller is and what they may do: bearer JWTs
// (HS256 with a shared secret, RS256/ES256 with public keys from a PEM or
// JWKS file) verified into a Principal, and the roles and workspace
// patterns a Principal is allowed.
//
// # Tokens
//
// Claims: sub is the user id; workspaces lists the workspace ids or
// patterns ("team-*", "*") the token opens; role is viewer (read and
// stream), member (also prompt, cancel, create and destroy sessions) or
// admin (also create, configure and delete workspaces). exp is required.
// iss and aud are checked when configured. A small leeway absorbs clock
// skew. "alg": "none" and any algorithm without a configured key are
// refused.
//
// # Concurrency properties
//
// A Verifier is immutable after NewVerifier and safe for concurrent use.
package auth
