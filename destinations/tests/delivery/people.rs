//! People manage webhooks with their sessions: a developer or admin of the
//! project may, a viewer may not, nor anyone of another project; a global
//! admin names the project. A session ended elsewhere is refused here
//! within seconds.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_runtime::access::Role;
use sluice_runtime::secret::Secret;
use sluice_testkit::eventually;
use sluice_testkit::sessions::{sign_out, signed_in};

use crate::harness::PrivateStack;

const SECRET: &str = "destinations-test-session-secret-32b!";

async fn as_person(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    project: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(project) = project {
        request = request.header("x-sluice-project", project);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the API answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_decide_who_manages_a_projects_webhooks() {
    let stack = PrivateStack::start("people");
    let mut config = stack.config();
    config.api.session_secret = Some(Secret::new(SECRET));
    let service = stack.start_service(config).await;
    let hooks = service.url("/v1/webhooks");
    let client = reqwest::Client::new();
    let kafka = &stack.kafka;
    let developer = signed_in(kafka, SECRET, &[("shop", Role::Developer)], false).await;
    let viewer = signed_in(kafka, SECRET, &[("shop", Role::Viewer)], false).await;
    let outsider = signed_in(kafka, SECRET, &[("other", Role::Admin)], false).await;
    let root = signed_in(kafka, SECRET, &[], true).await;

    // The sessions are known here within seconds. They were written in
    // turn to the one-partition access topic, so once the last one is
    // known, so are the others.
    eventually("the sessions", Duration::from_secs(20), || {
        let (client, hooks, token) = (&client, &hooks, &root.token);
        async move {
            let (status, _) = as_person(
                client,
                reqwest::Method::GET,
                hooks,
                token,
                Some("shop"),
                None,
            )
            .await;
            (status != 401).then_some(())
        }
    })
    .await;
    // The webhook goes to the developer's only project.
    let body = json!({"url": "http://127.0.0.1:9/hook", "rules": [{"type": "order"}]});
    let (status, created) = as_person(
        &client,
        reqwest::Method::POST,
        &hooks,
        &developer.token,
        None,
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["project_id"], "shop");
    let id = created["webhook_id"].as_str().expect("an id").to_owned();
    let one = format!("{hooks}/{id}");

    // A viewer of the project: refused, saying why.
    let (status, refused) = as_person(
        &client,
        reqwest::Method::GET,
        &hooks,
        &viewer.token,
        None,
        None,
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("viewer"),
        "{refused}"
    );
    // Another project's admin: neither sees nor touches it.
    let (status, refused) = as_person(
        &client,
        reqwest::Method::GET,
        &hooks,
        &outsider.token,
        Some("shop"),
        None,
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    let (status, list) = as_person(
        &client,
        reqwest::Method::GET,
        &hooks,
        &outsider.token,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert!(!list.to_string().contains(&id), "{list}");
    let (status, _) = as_person(
        &client,
        reqwest::Method::GET,
        &one,
        &outsider.token,
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);
    // A global admin names the project.
    let (status, list) = as_person(
        &client,
        reqwest::Method::GET,
        &hooks,
        &root.token,
        Some("shop"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert!(list.to_string().contains(&id), "{list}");

    // Signed out elsewhere: refused here within seconds.
    sign_out(kafka, &developer).await;
    eventually("the ended session refused", Duration::from_secs(20), || {
        let (client, one, token) = (&client, &one, &developer.token);
        async move {
            let (status, body) =
                as_person(client, reqwest::Method::GET, one, token, None, None).await;
            (status == 401).then_some(body)
        }
    })
    .await;
}
