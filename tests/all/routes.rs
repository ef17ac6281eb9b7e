//! Every route in `/openapi.json`, called on a real `kiln serve` with anonymous reads off:
//! without a token, with a read-only token, and with the scope it documents. Each answers
//! as documented (401, 403, or its handler's answer), never "no such route" or 405, and
//! every refusal is JSON with a code.

use serde_json::{Value as J, json};

use crate::{Kiln, Server};

const READ: &str = "read-token-0123456789abc";
const RUN: &str = "run-token-0123456789abcd";
const PUBLISH: &str = "publish-token-0123456789a";

/// Who the document says may call an operation: `None` for anyone, `Some("read")`, or the
/// scope a token needs.
fn needs(op: &J) -> Option<String> {
    let security = op["security"].as_array().unwrap();
    let scopes = security
        .iter()
        .find_map(|s| s["bearer"].as_array())
        .map(|s| {
            s.iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        });
    match scopes {
        None => None,
        Some(s) if s.is_empty() => Some("read".into()),
        Some(s) => Some(s[0].clone()),
    }
}

fn coded(status: u16, body: &[u8], what: &str) {
    let doc: J = serde_json::from_slice(body).unwrap_or_else(|_| {
        panic!(
            "{what}: {status} not JSON: {}",
            String::from_utf8_lossy(body)
        )
    });
    assert!(
        doc["error"]["code"].is_string() || doc["error_code"].is_string(),
        "{what}: {status} {doc}"
    );
}

#[test]
fn every_documented_route_answers_as_documented_with_and_without_tokens() {
    let k = Kiln::new();
    let s = Server::start(
        &k,
        Some(&format!(
            "anonymous_reads = false\n\n[[tokens]]\ntoken = \"{READ}\"\nscopes = [\"read\"]\n\n[[tokens]]\ntoken = \"{RUN}\"\nscopes = [\"run\"]\n\n[[tokens]]\ntoken = \"{PUBLISH}\"\nscopes = [\"publish\"]\n"
        )),
    );
    assert_eq!(s.call("GET", "/openapi.json", None, None).0, 401);
    let (status, doc) = s.json("GET", "/openapi.json", Some(READ), None);
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut operations = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .split('/')
            .map(|seg| match seg {
                "{reference}" | "{version}" => "1",
                s if s.starts_with('{') => "nothing-here",
                s => s,
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, op) in methods.as_object().unwrap() {
            operations += 1;
            let method = method.to_uppercase();
            let what = format!("{method} {path}");
            let body = op.get("requestBody").map(|_| b"{}".to_vec());
            let needs = needs(op);
            let send = |token: Option<&str>| s.call(&method, &concrete, token, body.clone());

            let (status, answer) = send(None);
            match &needs {
                None => assert_eq!(status, 200, "{what}"),
                Some(_) => {
                    assert_eq!(status, 401, "{what}");
                    coded(status, &answer, &what);
                }
            }
            let (status, answer) = send(Some(READ));
            match needs.as_deref() {
                None | Some("read") => assert!(status != 401 && status != 403, "{what}: {status}"),
                Some(_) => {
                    assert_eq!(status, 403, "{what}");
                    coded(status, &answer, &what);
                }
            }
            let token = match needs.as_deref() {
                Some("run") => RUN,
                Some("publish") => PUBLISH,
                _ => READ,
            };
            let (status, answer) = send(Some(token));
            assert!(
                ![401, 403, 405].contains(&status),
                "{what}: {status} {}",
                String::from_utf8_lossy(&answer)
            );
            if status >= 400 {
                coded(status, &answer, &what);
                assert!(
                    !String::from_utf8_lossy(&answer).contains("no such route"),
                    "{what}"
                );
            }
        }
    }
    assert!(operations >= 75, "{operations}");
    // A path that is not in the document is not served.
    let (status, body) = s.json("GET", "/v1/nothing", Some(READ), None);
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
}
