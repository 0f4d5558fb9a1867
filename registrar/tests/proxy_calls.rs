//! The home proxy over real sockets against the MariaDB pair, with sipp as caller and
//! as registered phones (scenarios in tests/sipp): parallel forking with the loser
//! cancelled, sequential q groups, caller CANCEL, Timer C ending in 408, 404 and 480,
//! MESSAGE, the Route set the first Path hop receives, RFC 5626 alternate flows on 430,
//! loose routing for a subscriber only, the refusal of foreign domains and of relaying
//! for foreign callers, and loop detection (482). One pair serves every step; each step
//! has its own user.

mod proxy_support;

use anyhow::Context;
use hasip_tests::MariaDbPair;
use proxy_support::{
    add_subscriber, free_ports, proxy_config, register, register_flow, require_sipp, store, Reg,
    Registrar, Sipp,
};
use tempfile::TempDir;

struct Ctx {
    store: hasip_registrar::store::Store,
    registrar: Registrar,
    logs: TempDir,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_through_the_home_proxy() -> anyhow::Result<()> {
    require_sipp()?;
    let pair = MariaDbPair::start().await?;
    let store = store(&pair, true)?;
    let registrar = Registrar::start(store.clone(), &proxy_config()).await?;
    let ctx = Ctx {
        store,
        registrar,
        logs: tempfile::tempdir()?,
    };
    add_subscriber(&pair, "frank", "f-secret").await?;

    two_bindings_ring_both_one_answers_the_other_is_cancelled(&ctx)
        .await
        .context("two bindings ring both")?;
    q_groups_are_tried_one_after_the_other(&ctx)
        .await
        .context("sequential q groups")?;
    caller_cancel_reaches_the_ringing_phone(&ctx)
        .await
        .context("caller CANCEL")?;
    unanswered_call_ends_in_408(&ctx)
        .await
        .context("no answer, Timer C")?;
    unknown_user_gets_404_and_known_user_without_binding_480(&ctx)
        .await
        .context("404 and 480")?;
    message_is_delivered(&ctx).await.context("MESSAGE")?;
    first_path_hop_gets_the_route_set(&ctx)
        .await
        .context("Route set at the first Path hop")?;
    failed_flow_falls_back_to_the_other_flow_of_the_instance(&ctx)
        .await
        .context("RFC 5626 alternate flow")?;
    route_to_another_hop_is_loose_routed_and_foreign_domain_refused(&ctx)
        .await
        .context("loose routing and refusal")?;
    binding_back_to_the_registrar_is_a_loop(&ctx)
        .await
        .context("loop detection")?;
    Ok(())
}

async fn two_bindings_ring_both_one_answers_the_other_is_cancelled(
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let ports = free_ports(2)?;
    let (p1, p2) = (ports[0], ports[1]);
    let answer = Sipp::phone("bob-answers", &ctx.logs, "phone_answer.xml", p1).await?;
    let ring = Sipp::phone("bob-rings", &ctx.logs, "phone_ring_cancelled.xml", p2).await?;
    for (port, call_id) in [(p1, "bob-phone-1"), (p2, "bob-phone-2")] {
        register(
            &ctx.store,
            Reg {
                user: "bob",
                contact: format!("sip:bob@127.0.0.1:{port}"),
                path: None,
                q: None,
                call_id,
                received: None,
            },
        )
        .await?;
    }
    let caller = Sipp::caller(
        "bob-caller",
        &ctx.logs,
        "caller_answered.xml",
        ctx.registrar.addr,
        "bob",
        &[],
    )?;
    caller.success().await?;
    answer.success().await?;
    ring.success().await
}

async fn caller_cancel_reaches_the_ringing_phone(ctx: &Ctx) -> anyhow::Result<()> {
    let port = free_ports(1)?[0];
    let phone = Sipp::phone("dave-rings", &ctx.logs, "phone_ring_cancelled.xml", port).await?;
    register(
        &ctx.store,
        Reg {
            user: "dave",
            contact: format!("sip:dave@127.0.0.1:{port}"),
            path: None,
            q: None,
            call_id: "dave-phone",
            received: None,
        },
    )
    .await?;
    let caller = Sipp::caller(
        "dave-caller",
        &ctx.logs,
        "caller_cancel.xml",
        ctx.registrar.addr,
        "dave",
        &[],
    )?;
    caller.success().await?;
    phone.success().await
}

async fn unanswered_call_ends_in_408(ctx: &Ctx) -> anyhow::Result<()> {
    // The phone rings until Timer C (3 s in these tests) cancels it.
    let port = free_ports(1)?[0];
    let phone = Sipp::phone("erin-rings", &ctx.logs, "phone_ring_cancelled.xml", port).await?;
    register(
        &ctx.store,
        Reg {
            user: "erin",
            contact: format!("sip:erin@127.0.0.1:{port}"),
            path: None,
            q: None,
            call_id: "erin-phone",
            received: None,
        },
    )
    .await?;
    let caller = Sipp::caller(
        "erin-caller",
        &ctx.logs,
        "caller_408.xml",
        ctx.registrar.addr,
        "erin",
        &[],
    )?;
    caller.success().await?;
    phone.success().await
}

async fn unknown_user_gets_404_and_known_user_without_binding_480(ctx: &Ctx) -> anyhow::Result<()> {
    let addr = ctx.registrar.addr;
    Sipp::caller(
        "nobody-caller",
        &ctx.logs,
        "caller_404.xml",
        addr,
        "nobody",
        &[],
    )?
    .success()
    .await?;
    // frank is a subscriber with no binding.
    Sipp::caller(
        "frank-caller",
        &ctx.logs,
        "caller_480.xml",
        addr,
        "frank",
        &[],
    )?
    .success()
    .await
}

async fn message_is_delivered(ctx: &Ctx) -> anyhow::Result<()> {
    let port = free_ports(1)?[0];
    let phone = Sipp::phone("gina-phone", &ctx.logs, "phone_message.xml", port).await?;
    register(
        &ctx.store,
        Reg {
            user: "gina",
            contact: format!("sip:gina@127.0.0.1:{port}"),
            path: None,
            q: None,
            call_id: "gina-phone",
            received: None,
        },
    )
    .await?;
    let caller = Sipp::caller(
        "gina-caller",
        &ctx.logs,
        "caller_message.xml",
        ctx.registrar.addr,
        "gina",
        &[],
    )?;
    caller.success().await?;
    phone.success().await
}

async fn first_path_hop_gets_the_route_set(ctx: &Ctx) -> anyhow::Result<()> {
    // The phone's Contact is unreachable on purpose: only the Path leads to it.
    let port = free_ports(1)?[0];
    let hop = Sipp::phone("hank-edge", &ctx.logs, "hop_checks_route.xml", port).await?;
    register(
        &ctx.store,
        Reg {
            user: "hank",
            contact: "sip:bob@192.0.2.44:5099;ob".into(),
            path: Some(format!(
                "<sip:tok1@127.0.0.1:{port};lr;ob>, <sip:127.0.0.1:9;lr>"
            )),
            q: None,
            call_id: "hank-phone",
            received: None,
        },
    )
    .await?;
    let caller = Sipp::caller(
        "hank-caller",
        &ctx.logs,
        "caller_message.xml",
        ctx.registrar.addr,
        "hank",
        &[],
    )?;
    caller.success().await?;
    hop.success().await
}

async fn failed_flow_falls_back_to_the_other_flow_of_the_instance(ctx: &Ctx) -> anyhow::Result<()> {
    let ports = free_ports(2)?;
    let (dead, live) = (ports[0], ports[1]);
    let dead_edge = Sipp::phone("ivan-dead-edge", &ctx.logs, "edge_flow_failed.xml", dead).await?;
    let live_edge = Sipp::phone("ivan-live-edge", &ctx.logs, "phone_message.xml", live).await?;
    // The flow through the dead edge is the most recent, so it is tried first.
    for (port, reg_id, call_id) in [(live, 2, "ivan-flow-2"), (dead, 1, "ivan-flow-1")] {
        register_flow(
            &ctx.store,
            Reg {
                user: "ivan",
                contact: "sip:ivan@192.0.2.50:5060;ob".into(),
                path: Some(format!("<sip:flow{reg_id}@127.0.0.1:{port};lr;ob>")),
                q: None,
                call_id,
                received: None,
            },
            Some(("<urn:uuid:00000000-0000-0000-0000-00000000ivan>", reg_id)),
        )
        .await?;
    }
    let caller = Sipp::caller(
        "ivan-caller",
        &ctx.logs,
        "caller_message.xml",
        ctx.registrar.addr,
        "ivan",
        &[],
    )?;
    caller.success().await?;
    dead_edge.success().await?;
    live_edge.success().await
}

async fn route_to_another_hop_is_loose_routed_and_foreign_domain_refused(
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let hop_port = free_ports(1)?[0];
    let hop = Sipp::phone("next-hop", &ctx.logs, "phone_message.xml", hop_port).await?;
    let hop_port = hop_port.to_string();
    // A caller who is neither trusted nor a subscriber gets no relay, Route or not.
    Sipp::caller(
        "relay-refused",
        &ctx.logs,
        "caller_loose_route_refused.xml",
        ctx.registrar.addr,
        "judy",
        &["-key", "hop_port", &hop_port],
    )?
    .success()
    .await?;
    // A subscriber who authenticates is loose-routed on to the hop, which then sees
    // exactly one MESSAGE.
    let caller = Sipp::caller(
        "loose-caller",
        &ctx.logs,
        "caller_loose_route.xml",
        ctx.registrar.addr,
        "judy",
        &[
            "-key",
            "hop_port",
            &hop_port,
            "-au",
            "frank",
            "-ap",
            "f-secret",
            // sipp would digest the first Route, not the Request-URI.
            "-auth_uri",
            "judy@elsewhere.example",
        ],
    )?;
    caller.success().await?;
    hop.success().await?;
    Sipp::caller(
        "relay-caller",
        &ctx.logs,
        "caller_message_403.xml",
        ctx.registrar.addr,
        "judy",
        &[],
    )?
    .success()
    .await
}

async fn binding_back_to_the_registrar_is_a_loop(ctx: &Ctx) -> anyhow::Result<()> {
    // A broken binding whose source is the registrar itself: the INVITE comes back
    // unchanged, the second pass sees its own Via with the same loop key and answers
    // 482, which the first pass relays to the caller.
    register(
        &ctx.store,
        Reg {
            user: "kate",
            contact: "sip:kate@example.com".into(),
            path: None,
            q: None,
            call_id: "kate-phone",
            received: Some(format!("sip:{}", ctx.registrar.addr)),
        },
    )
    .await?;
    Sipp::caller(
        "kate-caller",
        &ctx.logs,
        "caller_482.xml",
        ctx.registrar.addr,
        "kate",
        &[],
    )?
    .success()
    .await
}

async fn q_groups_are_tried_one_after_the_other(ctx: &Ctx) -> anyhow::Result<()> {
    // q=1.0 is busy; only then does the q=0.5 phone ring, and it answers.
    let ports = free_ports(2)?;
    let (busy_port, answer_port) = (ports[0], ports[1]);
    let busy = Sipp::phone("lena-busy", &ctx.logs, "phone_busy.xml", busy_port).await?;
    let answer = Sipp::phone("lena-answers", &ctx.logs, "phone_answer.xml", answer_port).await?;
    for (port, q, call_id) in [
        (busy_port, 1000, "lena-desk"),
        (answer_port, 500, "lena-mobile"),
    ] {
        register(
            &ctx.store,
            Reg {
                user: "lena",
                contact: format!("sip:lena@127.0.0.1:{port}"),
                path: None,
                q: Some(q),
                call_id,
                received: None,
            },
        )
        .await?;
    }
    let caller = Sipp::caller(
        "lena-caller",
        &ctx.logs,
        "caller_answered.xml",
        ctx.registrar.addr,
        "lena",
        &[],
    )?;
    caller.success().await?;
    busy.success().await?;
    answer.success().await
}
