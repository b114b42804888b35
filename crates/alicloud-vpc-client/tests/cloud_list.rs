//! `VpcClient::list_vpn_pbr_route_entries` against an in-test gateway whose entries change
//! between page reads: the list is the whole list at one moment, or `ListInconsistent`; never a
//! list that lacks a live entry (the rule is in `src/listing.rs`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alicloud_vpc_client::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::json;

/// One entry: source index and creation time (the destination and next hop are fixed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Item {
    source: usize,
    created: i64,
}

impl Item {
    fn source(self) -> String {
        format!("192.168.{}.{}/32", self.source / 250, self.source % 250)
    }
}

/// Called before each answer with the read's index, the page asked for and the entries.
type Before = Box<dyn FnMut(usize, u32, &mut Vec<Item>) + Send>;

/// A gateway's entry list, paged by offset like the API; `shuffle`: a new order on every call.
struct Gateway {
    entries: Vec<Item>,
    before: Before,
    shuffle: Option<u64>,
    pages_asked: Vec<u32>,
}

type Shared = Arc<Mutex<Gateway>>;

async fn answer(State(gw): State<Shared>, body: Bytes) -> impl IntoResponse {
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&body).into_owned().collect();
    let page: u32 = form["PageNumber"].parse().unwrap();
    let size: usize = form["PageSize"].parse().unwrap();
    let mut g = gw.lock().unwrap();
    let read = g.pages_asked.len();
    g.pages_asked.push(page);
    let Gateway {
        entries,
        before,
        shuffle,
        ..
    } = &mut *g;
    before(read, page, entries);
    let mut order = entries.clone();
    if let Some(state) = shuffle {
        for i in (1..order.len()).rev() {
            *state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let j = usize::try_from((*state >> 33) % (i as u64 + 1)).unwrap();
            order.swap(i, j);
        }
    }
    let start = ((page as usize - 1) * size).min(order.len());
    let end = (start + size).min(order.len());
    let items: Vec<_> = order[start..end]
        .iter()
        .map(|e| {
            json!({"VpnInstanceId": "vpn-1", "RouteSource": e.source(), "RouteDest": "10.0.0.0/24",
                   "NextHop": "vco-1", "Weight": 100, "Priority": 10, "State": "normal",
                   "CreateTime": e.created})
        })
        .collect();
    (
        [("content-type", "application/json")],
        json!({"RequestId": format!("R{read}"), "TotalCount": order.len(), "PageNumber": page,
               "PageSize": size, "VpnPbrRouteEntries": {"VpnPbrRouteEntry": items}})
        .to_string(),
    )
}

/// Lists seen by the observer: (reads, complete).
type Lists = Arc<Mutex<Vec<(u32, bool)>>>;

/// A gateway of `n` entries (made at 1000 + i) served on loopback, and a client of it.
async fn gateway(n: usize, before: Before, shuffle: Option<u64>) -> (Shared, VpcClient, Lists) {
    let gw: Shared = Arc::new(Mutex::new(Gateway {
        entries: (0..n).map(item).collect(),
        before,
        shuffle,
        pages_asked: Vec::new(),
    }));
    let app = axum::Router::new().fallback(answer).with_state(gw.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let lists: Lists = Arc::default();
    let config = ClientConfig {
        endpoint: Endpoint::from_url(&format!("http://{addr}/")).unwrap(),
        rate_limit: RateLimitConfig {
            max_rate: 10_000.0,
            min_rate: 1.0,
            burst: 10_000.0,
        },
        retry: RetryPolicy {
            max_attempts: 1,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        },
        ..ClientConfig::default()
    };
    let factory = VpcClientFactory::new(config)
        .unwrap()
        .with_observer(Arc::new(Observer(lists.clone())));
    let creds = Arc::new(StaticCredentials::new(Credentials::new("AKID", "secret")));
    let client = factory.client("cn-hangzhou", creds).unwrap();
    (gw, client, lists)
}

struct Observer(Lists);

impl CallObserver for Observer {
    fn observe(&self, _: &CallRecord<'_>) {}
    fn observe_list(&self, list: &ListRecord<'_>) {
        self.0.lock().unwrap().push((list.reads, list.complete));
    }
}

fn item(i: usize) -> Item {
    Item {
        source: i,
        created: 1000 + i64::try_from(i).unwrap(),
    }
}

fn listed(list: &VpnPbrRouteEntryList) -> Vec<String> {
    let mut v: Vec<String> = list
        .entries
        .iter()
        .map(|e| {
            format!(
                "{}@{}",
                e.fields.route_source,
                e.fields.create_time.unwrap_or(0)
            )
        })
        .collect();
    v.sort();
    v
}

fn current(gw: &Shared) -> Vec<String> {
    let mut v: Vec<String> = gw
        .lock()
        .unwrap()
        .entries
        .iter()
        .map(|e| format!("{}@{}", e.source(), e.created))
        .collect();
    v.sort();
    v
}

fn nothing() -> Before {
    Box::new(|_, _, _| {})
}

#[tokio::test]
async fn a_stable_list_of_three_pages_is_whole_after_its_pages_and_two_again() {
    let (gw, client, lists) = gateway(140, nothing(), None).await;
    let list = client.list_vpn_pbr_route_entries("vpn-1").await.unwrap();
    assert_eq!(list.entries.len(), 140);
    assert_eq!(list.total_count, 140);
    assert_eq!(listed(&list), current(&gw));
    assert_eq!(gw.lock().unwrap().pages_asked, [1, 2, 3, 1, 2]);
    assert_eq!(*lists.lock().unwrap(), [(5, true)]);
}

#[tokio::test]
async fn a_delete_between_page_one_and_page_two_never_hides_the_entry_it_moves() {
    // Page 1 lists 0..50; then 10 is deleted, so page 2 starts at 51: 50 is on no page of the
    // first pass, and that pass's union (with the deleted 10) has the new TotalCount, 100.
    // The list must not be that union: it is the list after the delete (the second pass
    // proves it), or an error.
    let before: Before = Box::new(|read, page, entries| {
        if read == 1 {
            assert_eq!(page, 2);
            entries.remove(10);
        }
    });
    let (gw, client, lists) = gateway(101, before, None).await;
    let list = client.list_vpn_pbr_route_entries("vpn-1").await.unwrap();
    let moved = format!("{}@{}", item(50).source(), item(50).created);
    assert!(
        listed(&list).contains(&moved),
        "the entry moved to page 1 by the delete is missing: {} listed",
        list.entries.len()
    );
    assert_eq!(listed(&list), current(&gw), "the list after the delete");
    assert_eq!(list.total_count, 100);
    assert_eq!(*lists.lock().unwrap(), [(4, true)]);
}

#[tokio::test]
async fn entries_replaced_between_every_two_page_reads_are_an_error_not_a_guess() {
    // Between every two reads someone deletes the oldest entry and makes a new one (listed
    // last): every page moves, and at the moment of any read one entry is either made after
    // the pages before it or deleted before the pages after it. No read proves the list.
    let mut made = 10_000;
    let before: Before = Box::new(move |read, _, entries| {
        if read > 0 {
            entries.remove(0);
            made += 1;
            entries.push(Item {
                source: made,
                created: i64::try_from(made).unwrap(),
            });
        }
    });
    let (gw, client, lists) = gateway(120, before, None).await;
    let e = client
        .list_vpn_pbr_route_entries("vpn-1")
        .await
        .expect_err("no moment proven");
    assert_eq!(e.code(), "ListInconsistent");
    assert_eq!(e.code(), LIST_INCONSISTENT);
    assert_eq!(e.class(), ErrorClass::Transient);
    let p = e.policy();
    assert_eq!((p.gone, p.refuses_create), (Gone::No, false));
    assert!(
        !e.is_gone(),
        "an inconsistent list is no evidence of absence"
    );
    let reads = gw.lock().unwrap().pages_asked.len();
    assert_eq!(reads, 3 * LIST_PASSES as usize, "given up after its passes");
    assert_eq!(e.request_id(), Some(format!("R{}", reads - 1).as_str()));
    assert!(e.to_string().contains("did not add up"), "{e}");
    assert_eq!(
        *lists.lock().unwrap(),
        [(u32::try_from(reads).unwrap(), false)]
    );
}

#[tokio::test]
async fn pages_in_a_new_order_on_every_call_still_make_one_whole_list() {
    // The API documents no order (the emulator's `shuffle_lists` shows a new one on every
    // call): pages then repeat some entries and skip others. Several lists, so a reader that
    // stops at a union of a few passes would miss an entry in one of them.
    for seed in 1..=10u64 {
        let (gw, client, lists) = gateway(140, nothing(), Some(seed)).await;
        let list = client.list_vpn_pbr_route_entries("vpn-1").await.unwrap();
        assert_eq!(listed(&list), current(&gw), "seed {seed}");
        let reads = gw.lock().unwrap().pages_asked.len();
        assert!(
            reads < 3 * LIST_PASSES as usize,
            "seed {seed}: {reads} reads"
        );
        assert_eq!(
            *lists.lock().unwrap(),
            [(u32::try_from(reads).unwrap(), true)]
        );
    }
}

#[tokio::test]
async fn pages_in_a_new_order_with_a_delete_between_them_are_the_list_after_it() {
    let before: Before = Box::new(|read, _, entries| {
        if read == 2 {
            entries.retain(|e| e.source != 77);
        }
    });
    let (gw, client, _) = gateway(140, before, Some(3)).await;
    let list = client.list_vpn_pbr_route_entries("vpn-1").await.unwrap();
    assert_eq!(list.entries.len(), 139);
    assert_eq!(listed(&list), current(&gw));
}
