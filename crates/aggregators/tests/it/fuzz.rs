//! Property tests: arbitrary bytes and mutated real frames never make a decoder panic; they
//! decode or return a typed error.

use kamiyo_aggregators::hyperliquid::wire::{self, WsContext, decode_ws_text};
use kamiyo_aggregators::sources::ticker::TickerApi;
use kamiyo_aggregators::sources::{binance, bybit, coinbase, gate, kraken, kucoin, mexc, okx};
use kamiyo_core_models::{Address, Coin, Timestamp};
use proptest::prelude::*;

use crate::fixture;

const NOW: Timestamp = Timestamp(1_700_000_000_000);

fn ctx() -> WsContext {
    WsContext {
        user_events_owner: Some(Address::from_bytes([1; 20])),
        universe: vec![Coin::new("BTC").unwrap(), Coin::new("ETH").unwrap()],
    }
}

/// Runs every decoder on `text`; the property is simply "returns".
fn decode_everything(text: &str) {
    let u = Address::from_bytes([2; 20]);
    let _ = decode_ws_text(text, NOW, &ctx());
    let _ = wire::decode_meta(text);
    let _ = wire::decode_meta_and_asset_ctxs(text, NOW);
    let _ = wire::decode_all_mids(text, NOW);
    let _ = wire::decode_l2_book(text);
    let _ = wire::decode_user_fills(text, u);
    let _ = wire::decode_recent_trades(text);
    let _ = wire::decode_oi_cap(text);
    let _ = wire::decode_clearinghouse_state(text, u, NOW);
    let _ = wire::decode_vault_details(text, NOW);
    let _ = wire::decode_portfolio(text, u, NOW);
    let _ = wire::decode_candles(text);
    let _ = wire::decode_funding_history(text);
    let _ = wire::decode_ledger_updates(text, u);
    let _ = binance::decode_book_ticker(text);
    let _ = binance::decode_price_ticker(text);
    let _ = coinbase::decode_ticker(text);
    let apis: [&dyn TickerApi; 8] = [
        &binance::Binance,
        &okx::Okx,
        &bybit::Bybit,
        &kraken::Kraken,
        &kucoin::Kucoin,
        &gate::Gate,
        &mexc::Mexc,
        &coinbase::Coinbase,
    ];
    for api in apis {
        let _ = api.decode(text, Some("BTCUSDT"));
        let _ = api.decode(text, None);
    }
    let _ = kucoin::decode_stats(text);
    let _ = kucoin::decode_bullet(text);
    let _ = okx::decode_ws(text);
    let _ = bybit::decode_ws(text);
    let _ = gate::decode_ws(text);
    let _ = kraken::decode_ws(text);
    let _ = kucoin::decode_ws(text);
    let _ = mexc::decode_ws_text(text);
    let _ = mexc::decode_push(text.as_bytes());
}

/// MEXC's binary pushes (reconstructed with Google's encoder; see the fixtures' SOURCES).
const MEXC_PUSHES: [&str; 2] = [
    "cex/mexc/RECONSTRUCTED-ws-aggre-bookTicker-BTCUSDT.pb",
    "cex/mexc/RECONSTRUCTED-ws-bookTicker-batch-BTCUSDT.pb",
];

const SEEDS: &[&str] = &[
    "hyperliquid/ws/allMids_trimmed.json",
    "hyperliquid/ws/user_fill_liquidation.json",
    "hyperliquid/ws/allDexsAssetCtxs_trimmed.json",
    "hyperliquid/ws/subscriptionResponse_trades_SOL.json",
    "hyperliquid/metaAndAssetCtxs_trimmed_BTC-ETH-SOL-HYPE.json",
    "hyperliquid/clearinghouseState_HLP-StrategyA_trimmed.json",
    "hyperliquid/userFills_HLP-Liquidator_backstop_trimmed.json",
    "hyperliquid/vaultDetails_HLP_docs-example.json",
    "hyperliquid/l2Book_DYDX_2023-07-17.json",
    "hyperliquid/userNonFundingLedgerUpdates.json",
    "coinbase/exchange_products_BTC-USDT_ticker_2024-03-13.json",
    "binance/DOCS-EXAMPLE_api_v3_ticker_bookTicker.json",
    "cex/okx/REAL-ccxt-rest-v5-market-ticker-BTC-USDT.json",
    "cex/bybit/DOCS-EXAMPLE-rest-v5-market-tickers-spot-BTCUSDT.json",
    "cex/kraken/REAL-ccxt-rest-public-Ticker-XBTUSDT.json",
    "cex/kucoin/DOCS-EXAMPLE-rest-allTickers-1item.json",
    "cex/gate/REAL-ccxt-rest-spot-tickers-BTC_USDT.json",
    "cex/mexc/REAL-ccxt-rest-spot-ticker24hr-BTCUSDT.json",
    "cex/okx/DOCS-EXAMPLE-ws-v5-tickers-BTC-USDT.json",
    "cex/bybit/DOCS-EXAMPLE-ws-v5-tickers-spot-BTCUSDT.json",
    "cex/kraken/DOCS-EXAMPLE-ws-v2-ticker-snapshot-ALGO-USD.json",
    "cex/kucoin/DOCS-EXAMPLE-ws-market-ticker-BTC-USDT.json",
];

/// A trades frame in the live wire shape (no recorded `trades` frame exists; this one follows
/// the documented WsTrade layout).
const TRADES_FRAME: &str = r#"{"channel":"trades","data":[{"coin":"ETH","side":"B","px":"1915.5","sz":"12.4","hash":"0x1b3c","time":1741786800000,"tid":771334864158847,"users":["0xf3f496c9486be5924a93d67e98298733bb47057c","0x2e3d94f0562703b25c83308a05046ddaf9a8dd14"]}]}"#;

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, String),
    Delete(usize, usize),
    ReplaceNumber(usize, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let weird = prop_oneof![
        Just("1e999".to_owned()),
        Just("-".to_owned()),
        Just("99999999999999999999999999999999999".to_owned()),
        Just("NaN".to_owned()),
        Just("null".to_owned()),
        Just("\"\"".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("\"\\u0000\"".to_owned()),
        Just("-0.0".to_owned()),
        "[a-z0-9\"{}\\[\\],:.-]{0,12}",
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), weird.clone()).prop_map(|(i, s)| Mutation::Insert(i, s)),
        (any::<usize>(), 0usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), weird).prop_map(|(i, s)| Mutation::ReplaceNumber(i, s)),
    ]
}

fn apply(mut bytes: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let n = bytes.len().max(1);
    match m {
        Mutation::Flip(i, b) => {
            if let Some(x) = bytes.get_mut(i % n) {
                *x ^= b | 1;
            }
        }
        Mutation::Truncate(i) => bytes.truncate(i % n),
        Mutation::Insert(i, s) => {
            let at = i % n;
            bytes.splice(at..at, s.bytes());
        }
        Mutation::Delete(i, k) => {
            let at = i % n;
            let end = (at + k).min(bytes.len());
            bytes.drain(at..end);
        }
        Mutation::ReplaceNumber(i, s) => {
            // Replace the string value that starts after the i-th quote-colon-quote.
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let spots: Vec<usize> = text.match_indices("\":\"").map(|(p, _)| p + 3).collect();
            if !spots.is_empty() {
                let start = spots[i % spots.len()];
                let end = text[start..].find('"').map_or(text.len(), |e| start + e);
                let mut t = text;
                t.replace_range(start..end, s);
                return t.into_bytes();
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        decode_everything(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn json_shaped_noise_never_panics(s in "[\\[\\]{}\",:0-9a-zA-Z.\\-e ]{0,400}") {
        decode_everything(&s);
        decode_everything(&format!(r#"{{"channel":"trades","data":{s}}}"#));
        decode_everything(&format!(r#"{{"channel":"userFills","data":{s}}}"#));
        decode_everything(&format!(r#"{{"channel":"activeAssetCtx","data":{s}}}"#));
    }

    #[test]
    fn mutated_real_frames_never_panic(seed in 0usize..SEEDS.len() + 1, muts in proptest::collection::vec(mutation(), 1..6)) {
        let base = if seed == SEEDS.len() { TRADES_FRAME.to_owned() } else { fixture(SEEDS[seed]) };
        let mut bytes = base.into_bytes();
        for m in &muts {
            bytes = apply(bytes, m);
        }
        decode_everything(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_and_mutated_protobuf_never_panics(
        noise in proptest::collection::vec(any::<u8>(), 0..512),
        seed in 0usize..MEXC_PUSHES.len(),
        muts in proptest::collection::vec(mutation(), 1..6),
    ) {
        let _ = mexc::decode_push(&noise);
        let mut bytes = std::fs::read(crate::fixture_path(MEXC_PUSHES[seed])).unwrap();
        for m in &muts {
            bytes = apply(bytes, m);
        }
        if let Ok(tops) = mexc::decode_push(&bytes) {
            prop_assert!(tops.len() <= bytes.len());
        }
    }
}

#[test]
fn the_trades_frame_decodes() {
    let m = decode_ws_text(TRADES_FRAME, NOW, &ctx()).unwrap();
    let wire::WsMessage::Events { events, .. } = m else {
        panic!("{m:?}")
    };
    assert_eq!(events.len(), 1);
}

#[test]
fn hostile_numbers_are_typed_errors() {
    for px in [
        "1e999",
        "99999999999999999999999999999999999",
        "NaN",
        "-",
        "",
    ] {
        let frame = TRADES_FRAME.replace("\"1915.5\"", &format!("\"{px}\""));
        let err = decode_ws_text(&frame, NOW, &ctx()).unwrap_err();
        assert_eq!(err.what, "trades", "{px}: {err}");
    }
}

mod fast_path {
    use kamiyo_aggregators::hyperliquid::fast::{
        fast_book, fast_candle, fast_ctx, fast_fills, fast_mids, fast_trades,
    };
    use kamiyo_aggregators::hyperliquid::wire::{WsContext, WsMessage, decode_ws_text_general};
    use kamiyo_core_models::Timestamp;
    use proptest::prelude::*;

    fn general(s: &str) -> Option<Vec<kamiyo_core_models::MarketEvent>> {
        match decode_ws_text_general(s, Timestamp(0), &WsContext::default()) {
            Ok(WsMessage::Events { events, .. }) => Some(events),
            _ => None,
        }
    }

    fn field() -> impl Strategy<Value = (String, String)> {
        prop_oneof![
            Just(("hash".to_owned(), "\"0x1b3c\"".to_owned())),
            Just(("extra".to_owned(), "12.5e3".to_owned())),
            Just(("flag".to_owned(), "true".to_owned())),
            Just(("nothing".to_owned(), "null".to_owned())),
        ]
    }

    prop_compose! {
        fn trade_obj()(px in 1u64..10_000_000, frac in 0u32..10_000, sz in 1u64..1_000_000, t in 0i64..2_000_000_000_000, tid in 0u64..(1 << 50),
                       buy: bool, users in 0u8..3, extra in proptest::collection::vec(field(), 0..3), seed in 0usize..1000, ws in prop_oneof![Just(""), Just(" "), Just("\n  ")]) -> String {
            let mut kv: Vec<(String, String)> = vec![
                ("coin".into(), "\"ETH\"".into()),
                ("side".into(), format!("\"{}\"", if buy { "B" } else { "A" })),
                ("px".into(), format!("\"{px}.{frac}\"")),
                ("sz".into(), format!("\"{sz}\"")),
                ("time".into(), t.to_string()),
                ("tid".into(), tid.to_string()),
            ];
            match users {
                0 => {}
                1 => kv.push(("users".into(), "null".into())),
                _ => kv.push(("users".into(), "[\"0xf3f496c9486be5924a93d67e98298733bb47057c\",\"0x2e3d94f0562703b25c83308a05046ddaf9a8dd14\"]".into())),
            }
            kv.extend(extra);
            let n = kv.len();
            kv.rotate_left(seed % n);
            let body: Vec<String> = kv.iter().map(|(k, v)| format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}")).collect();
            format!("{{{}}}", body.join(","))
        }
    }

    prop_compose! {
        /// A trade exactly as the server lays it out (the straight-through path).
        fn server_trade()(px in 1u64..10_000_000, frac in 0u32..10_000, sz in 1u64..1_000_000, t in 0i64..2_000_000_000_000, tid in 0u64..(1 << 50),
                          buy: bool, hash_first: bool, hash in "[0-9a-f]{64}", coin in prop_oneof![Just("ETH"), Just("kPEPE"), Just("@107"), Just("xyz:XYZ100")]) -> String {
            let (hash, time) = (format!(r#""hash":"0x{hash}""#), format!(r#""time":{t}"#));
            let (first, second) = if hash_first { (hash, time) } else { (time, hash) };
            format!(
                r#"{{"coin":"{coin}","side":"{}","px":"{px}.{frac}","sz":"{sz}",{first},{second},"tid":{tid},"users":["0xf3f496c9486be5924a93d67e98298733bb47057c","0x2E3D94F0562703B25C83308A05046DDAF9A8DD14"]}}"#,
                if buy { "B" } else { "A" },
            )
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn server_layout_frames_and_their_mutations_decode_exactly_like_the_general_decoder(objs in proptest::collection::vec(server_trade(), 1..4), cut in any::<usize>(), junk in "[\\[\\]{}\",:0-9a-zA-Z.\\\\ \n\t\u{1}-]{0,4}") {
            let frame = format!(r#"{{"channel":"trades","data":[{}]}}"#, objs.join(","));
            let fast = fast_trades(&frame);
            prop_assert!(fast.is_some(), "{}", frame);
            prop_assert_eq!(fast, general(&frame));
            let at = cut % frame.len();
            let mutated = format!("{}{}{}", &frame[..at], junk, &frame[at..]);
            if let Some(fast) = fast_trades(&mutated) {
                prop_assert_eq!(Some(fast), general(&mutated), "{}", mutated);
            }
        }

        #[test]
        fn fast_path_answers_well_formed_frames_exactly_like_the_general_decoder(objs in proptest::collection::vec(trade_obj(), 0..5)) {
            let frame = format!(r#"{{"channel":"trades","data":[{}]}}"#, objs.join(","));
            let fast = fast_trades(&frame);
            prop_assert!(fast.is_some(), "well-formed frames take the fast path: {}", frame);
            prop_assert_eq!(fast, general(&frame));
        }

        #[test]
        fn when_the_fast_path_answers_a_mutated_frame_the_general_decoder_agrees(objs in proptest::collection::vec(trade_obj(), 1..3), cut in any::<usize>(), junk in "[\\[\\]{}\",:0-9a-z.\\\\ -]{0,6}") {
            let frame = format!(r#"{{"channel":"trades","data":[{}]}}"#, objs.join(","));
            let at = cut % frame.len();
            let at = (0..=at).rev().find(|i| frame.is_char_boundary(*i)).unwrap_or(0);
            let mutated = format!("{}{}{}", &frame[..at], junk, &frame[at..]);
            if let Some(fast) = fast_trades(&mutated) {
                prop_assert_eq!(Some(fast), general(&mutated), "{}", mutated);
            }
        }
    }

    prop_compose! {
        /// One `allMids` entry: a coin (perp, spot `@n`, builder-deployed `dex:NAME`) and a
        /// price with up to eight decimals, sometimes odd (negative, zero, many digits).
        fn mid()(coin in prop_oneof![Just("BTC".to_owned()), Just("kPEPE".to_owned()), "@[0-9]{1,4}", "[a-z]{2,4}:[A-Z0-9]{2,8}", "[A-Z]{2,6}"],
                 whole in 0u64..10_000_000, frac in "[0-9]{0,8}", odd in 0u8..8) -> String {
            let px = match odd {
                0 => format!("-{whole}.5"),
                1 => "123456789012345678901234.5".to_owned(),
                2 => "0.0".to_owned(),
                _ if frac.is_empty() => whole.to_string(),
                _ => format!("{whole}.{frac}"),
            };
            format!(r#""{coin}":"{px}""#)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// `allMids` frames in the server's layout take the fast path and decode exactly as the
        /// general decoder decodes them; mutated ones, whenever the fast path still answers.
        #[test]
        fn mids_frames_and_their_mutations_decode_exactly_like_the_general_decoder(entries in proptest::collection::vec(mid(), 0..40), cut in any::<usize>(), junk in "[\\[\\]{}\",:0-9a-zA-Z.@\\\\ \n\t\u{1}-]{0,4}") {
            let frame = format!(r#"{{"channel":"allMids","data":{{"mids":{{{}}}}}}}"#, entries.join(","));
            let fast = fast_mids(&frame, kamiyo_core_models::Timestamp(0));
            prop_assert!(fast.is_some(), "{}", frame);
            prop_assert_eq!(fast, general(&frame));
            // Again, now that this frame's keys are the remembered ones (the quick run).
            prop_assert_eq!(fast_mids(&frame, kamiyo_core_models::Timestamp(0)), general(&frame));
            let at = cut % frame.len();
            let at = (0..=at).rev().find(|i| frame.is_char_boundary(*i)).unwrap_or(0);
            let mutated = format!("{}{}{}", &frame[..at], junk, &frame[at..]);
            if let Some(fast) = fast_mids(&mutated, kamiyo_core_models::Timestamp(0)) {
                prop_assert_eq!(Some(fast), general(&mutated), "{}", mutated);
            }
        }
    }

    prop_compose! {
        /// One book level as the server lays it out; sometimes an odd count or price.
        fn level()(whole in 0u64..1_000_000, frac in "[0-9]{0,6}", sz in 0u64..10_000_000, n in 0u64..100, odd in 0u8..10) -> String {
            let px = if frac.is_empty() { whole.to_string() } else { format!("{whole}.{frac}") };
            let n = match odd {
                0 => "-1".to_owned(),
                1 => "4294967296".to_owned(),
                2 => "1.5".to_owned(),
                _ => n.to_string(),
            };
            format!(r#"{{"px":"{px}","sz":"{sz}.{}","n":{n}}}"#, sz % 100)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// `l2Book` frames in the server's layout decode exactly as the general decoder decodes
        /// them (odd counts make both refuse); mutated ones, whenever the fast path answers.
        #[test]
        fn book_frames_and_their_mutations_decode_exactly_like_the_general_decoder(bids in proptest::collection::vec(level(), 0..20), asks in proptest::collection::vec(level(), 0..20), coin in prop_oneof![Just("HYPE"), Just("@107"), Just("xyz:XYZ100")], t in 0i64..2_000_000_000_000, cut in any::<usize>(), junk in "[\\[\\]{}\",:0-9a-zA-Z.@\\\\ \n\t\u{1}-]{0,4}") {
            let frame = format!(r#"{{"channel":"l2Book","data":{{"coin":"{coin}","time":{t},"levels":[[{}],[{}]]}}}}"#, bids.join(","), asks.join(","));
            let fast = fast_book(&frame);
            let odd = bids.iter().chain(&asks).any(|l| l.contains(r#""n":-"#) || l.contains("4294967296") || l.contains(r#""n":1.5"#));
            prop_assert_eq!(fast.is_some(), !odd, "{}", frame);
            if fast.is_some() {
                prop_assert_eq!(fast, general(&frame));
            }
            let at = cut % frame.len();
            let at = (0..=at).rev().find(|i| frame.is_char_boundary(*i)).unwrap_or(0);
            let mutated = format!("{}{}{}", &frame[..at], junk, &frame[at..]);
            if let Some(fast) = fast_book(&mutated) {
                prop_assert_eq!(Some(fast), general(&mutated), "{}", mutated);
            }
        }
    }

    prop_compose! {
        /// A decimal value of a context: usually a quoted decimal, sometimes `null` or odd.
        fn ctx_value()(whole in 0u64..10_000_000, frac in "[0-9]{0,10}", neg: bool, odd in 0u8..12) -> String {
            match odd {
                0 => "null".to_owned(),
                1 => "12.5".to_owned(),
                2 => r#""""#.to_owned(),
                _ if frac.is_empty() => format!(r#""{}{whole}""#, if neg { "-" } else { "" }),
                _ => format!(r#""{}{whole}.{frac}""#, if neg { "-" } else { "" }),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// `activeAssetCtx` frames in the server's layout: whenever the fast path answers, the
        /// general decoder gives the same answer, on the frame and on mutations of it; with
        /// well-formed values it does answer.
        #[test]
        fn ctx_frames_and_their_mutations_decode_exactly_like_the_general_decoder(v in proptest::collection::vec(ctx_value(), 10), impact in prop::bool::ANY, coin in prop_oneof![Just("BTC"), Just("kPEPE"), Just("xyz:XYZ100")], cut in any::<usize>(), junk in "[\\[\\]{}\",:0-9a-zA-Z.@\\\\ \n\t\u{1}-]{0,4}") {
            let impact = if impact { format!("[{},{}]", v[8], v[9]) } else { "null".to_owned() };
            let frame = format!(
                r#"{{"channel":"activeAssetCtx","data":{{"coin":"{coin}","ctx":{{"funding":{},"openInterest":{},"prevDayPx":{},"dayNtlVlm":{},"premium":{},"oraclePx":{},"markPx":{},"midPx":{},"impactPxs":{impact},"dayBaseVlm":{}}}}}}}"#,
                v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[9]
            );
            let now = kamiyo_core_models::Timestamp(0);
            let fast = fast_ctx(&frame, now);
            if let Some(f) = &fast {
                prop_assert_eq!(Some(f.clone()), general(&frame), "{}", frame);
            }
            let plain = v.iter().all(|x| x.starts_with("\"") && x.len() > 2);
            if plain {
                prop_assert!(fast.is_some(), "{}", frame);
            }
            let at = cut % frame.len();
            let at = (0..=at).rev().find(|i| frame.is_char_boundary(*i)).unwrap_or(0);
            let mutated = format!("{}{}{}", &frame[..at], junk, &frame[at..]);
            if let Some(fast) = fast_ctx(&mutated, now) {
                prop_assert_eq!(Some(fast), general(&mutated), "{}", mutated);
            }
        }
    }

    fn general_with_snapshot(s: &str) -> Option<(Vec<kamiyo_core_models::MarketEvent>, bool)> {
        match decode_ws_text_general(s, Timestamp(0), &WsContext::default()) {
            Ok(WsMessage::Events { events, snapshot }) => Some((events, snapshot)),
            _ => None,
        }
    }

    prop_compose! {
        /// A fill object: the server's members (each usually plain, sometimes `null` or of an
        /// odd type), in the server's order or shuffled, sometimes with extra members.
        fn fill_obj()(px in 1u64..10_000_000, frac in "[0-9]{0,6}", sz in 1u64..1_000_000, t in 0i64..2_000_000_000_000, tid in 0u64..(1 << 50),
                      oid in 0u64..(1 << 40), buy: bool, odd in 0u8..40, shuffle in 0usize..1000, extra in proptest::collection::vec(field(), 0..2),
                      dir in prop_oneof![Just("Open Long"), Just("Close Short"), Just("Long > Short"), Just("Liquidated Isolated Long"), Just("Buy")]) -> String {
            let dec = |w: u64| if frac.is_empty() { format!("\"{w}\"") } else { format!("\"{w}.{frac}\"") };
            let mut kv: Vec<(String, String)> = vec![
                ("coin".into(), "\"ETH\"".into()),
                ("px".into(), dec(px)),
                ("sz".into(), dec(sz)),
                ("side".into(), if buy { "\"B\"" } else { "\"A\"" }.into()),
                ("time".into(), t.to_string()),
                ("startPosition".into(), dec(sz)),
                ("dir".into(), format!("\"{dir}\"")),
                ("closedPnl".into(), "\"-0.25686\"".into()),
                ("hash".into(), "\"0x3d4770d0527317ef77c404017559cb0103000b34010cc95e97b437cbc3b6087a\"".into()),
                ("oid".into(), oid.to_string()),
                ("crossed".into(), "true".into()),
                ("fee".into(), "\"0.0123\"".into()),
                ("tid".into(), tid.to_string()),
                ("feeToken".into(), "\"USDC\"".into()),
            ];
            // One member made odd now and then: null, another type, a liquidation, removed.
            let k = (odd as usize) % kv.len();
            match odd / 14 {
                0 if odd % 3 == 0 => kv[k].1 = "null".into(),
                0 if odd % 3 == 1 => kv[k].1 = "12.5".into(),
                0 => { kv.remove(k); }
                1 if odd % 2 == 0 => kv.push(("liquidation".into(), r#"{"liquidatedUser":"0x360878d351f05975e25f1807a27895e1e5e004fb","markPx":"66607.0","method":"market"}"#.into())),
                1 => kv.push(("liquidation".into(), "null".into())),
                _ => {}
            }
            kv.extend(extra);
            if shuffle % 3 == 0 {
                let n = kv.len();
                kv.rotate_left(shuffle % n);
            }
            format!("{{{}}}", kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect::<Vec<_>>().join(","))
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// `userFills` frames: whenever the fast path answers — on the frame or a mutation of
        /// it — the general decoder gives the same events and the same snapshot flag; with
        /// plain members in the server's layout it does answer.
        #[test]
        fn fills_frames_and_their_mutations_decode_exactly_like_the_general_decoder(fills in proptest::collection::vec(fill_obj(), 0..4), snapshot in prop_oneof![Just(""), Just(r#""isSnapshot":true,"#), Just(r#""isSnapshot":false,"#)], user_last: bool, cut in any::<usize>(), junk in "[\\[\\]{}\",:0-9a-zA-Z.@\\\\ \n\t\u{1}-]{0,4}") {
            let user = r#""user":"0x2e3d94f0562703b25c83308a05046ddaf9a8dd14""#;
            let list = format!(r#""fills":[{}]"#, fills.join(","));
            let frame = if user_last {
                format!(r#"{{"channel":"userFills","data":{{{snapshot}{list},{user}}}}}"#)
            } else {
                format!(r#"{{"channel":"userFills","data":{{{snapshot}{user},{list}}}}}"#)
            };
            // Twice: the second time each fill's keys are first compared with the order the
            // last fill read on this thread had (the first time, with some earlier case's).
            for _ in 0..2 {
                let fast = fast_fills(&frame);
                if let Some(f) = &fast {
                    prop_assert_eq!(Some(f.clone()), general_with_snapshot(&frame), "{}", frame);
                }
            }
            let at = cut % frame.len();
            let at = (0..=at).rev().find(|i| frame.is_char_boundary(*i)).unwrap_or(0);
            let mutated = format!("{}{}{}", &frame[..at], junk, &frame[at..]);
            if let Some(fast) = fast_fills(&mutated) {
                prop_assert_eq!(Some(fast), general_with_snapshot(&mutated), "{}", mutated);
            }
        }
    }

    /// `allMids` remembers the keys of the last frame by position: frames whose keys differ
    /// from it by one byte, by length, by a prefix, by whitespace or by order still decode
    /// exactly as the general decoder decodes them.
    #[test]
    fn remembered_mid_keys_never_change_an_answer() {
        let frames = [
            r#"{"channel":"allMids","data":{"mids":{"BTC":"97000.5","ETH":"3500","@107":"1.25","xyz:XYZ100":"7.5"}}}"#,
            r#"{"channel":"allMids","data":{"mids":{"BTC":"97001.5","ETH":"3501","@107":"1.5","xyz:XYZ100":"7.25"}}}"#,
            r#"{"channel":"allMids","data":{"mids":{"BTD":"1","ETHX":"2","@10":"3","xyz:XYZ10":"4"}}}"#,
            r#"{"channel":"allMids","data":{"mids":{"BT":"1","ETH":"2","@1077":"3","xyz:XYZ1000":"4"}}}"#,
            r#"{"channel":"allMids","data":{"mids":{"BTC": "1","ETH" :"2", "@107":"3","xyz:XYZ100":"4"}}}"#,
            r#"{"channel":"allMids","data":{"mids":{"ETH":"2","BTC":"1","xyz:XYZ100":"4","@107":"3"}}}"#,
            r#"{"channel":"allMids","data":{"mids":{"BTC":"1","BTC":"2"}}}"#,
            r#"{"channel":"allMids","data":{"mids":{"BTC":"1","ETH":"x"}}}"#,
            r#"{"channel":"allMids","data":{"mids":{"BTC":"97000.5","ETH":"3500","@107":"1.25","xyz:XYZ100":"7.5"}}}"#,
        ];
        for _ in 0..2 {
            for f in frames {
                let fast = fast_mids(f, Timestamp(0));
                if let Some(events) = &fast {
                    assert_eq!(Some(events.clone()), general(f), "{f}");
                }
            }
        }
        assert!(fast_mids(frames[0], Timestamp(0)).is_some());
        assert!(
            fast_mids(frames[4], Timestamp(0)).is_some(),
            "whitespace between pairs"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// `candle` frames in the server's layout: whenever the fast path answers — on the
        /// frame or a mutation of it — the general decoder agrees; with plain values it answers.
        #[test]
        fn candle_frames_and_their_mutations_decode_exactly_like_the_general_decoder(v in proptest::collection::vec(ctx_value(), 5), t in 0i64..2_000_000_000_000, n in 0u64..10_000_000, coin in prop_oneof![Just("HYPE"), Just("@107"), Just("xyz:XYZ100")], interval in prop_oneof![Just("1m"), Just("1h"), Just("1d"), Just("1M")], cut in any::<usize>(), junk in "[\\[\\]{}\",:0-9a-zA-Z.@\\\\ \n\t\u{1}-]{0,4}") {
            let frame = format!(
                r#"{{"channel":"candle","data":{{"t":{t},"T":{},"s":"{coin}","i":"{interval}","o":{},"c":{},"h":{},"l":{},"v":{},"n":{n}}}}}"#,
                t + 86_399_999, v[0], v[1], v[2], v[3], v[4]
            );
            let now = kamiyo_core_models::Timestamp(0);
            let fast = fast_candle(&frame, now);
            if let Some(f) = &fast {
                prop_assert_eq!(Some(f.clone()), general(&frame), "{}", frame);
            }
            if v.iter().all(|x| x.starts_with('"') && x.len() > 2) {
                prop_assert!(fast.is_some(), "{}", frame);
            }
            let at = cut % frame.len();
            let at = (0..=at).rev().find(|i| frame.is_char_boundary(*i)).unwrap_or(0);
            let mutated = format!("{}{}{}", &frame[..at], junk, &frame[at..]);
            if let Some(fast) = fast_candle(&mutated, now) {
                prop_assert_eq!(Some(fast), general(&mutated), "{}", mutated);
            }
        }
    }

    /// The recorded candle frame (HYPE 1d, 2025-12-04, testdata/fixtures/hyperliquid/ws) takes
    /// the fast path and decodes as the general decoder decodes it.
    #[test]
    fn the_recorded_candle_frame_takes_the_fast_path() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/fixtures/hyperliquid/ws/candle_HYPE_1d_2025-12-04.jsonl"
        ))
        .unwrap();
        let frame = text.lines().nth(1).unwrap();
        let fast = fast_candle(frame, Timestamp(0));
        assert!(fast.is_some());
        assert_eq!(fast, general(frame));
        let Some(kamiyo_core_models::MarketEvent::Candle(c)) =
            fast.and_then(|v| v.into_iter().next())
        else {
            panic!("not a candle")
        };
        assert_eq!(
            (c.coin.as_str(), c.interval.as_str(), c.trades),
            ("HYPE", "1d", 102_895)
        );
        assert_eq!(c.volume.to_string(), "3495670.8399999999");
    }

    /// The recorded fills (testdata/fixtures/hyperliquid/userFills_500.json, 2023, three to a
    /// frame as the channel sends them) take the fast path and decode as the general decoder
    /// decodes them.
    #[test]
    fn the_recorded_fills_take_the_fast_path() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/fixtures/hyperliquid/userFills_500.json"
        ))
        .unwrap();
        let fills: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        for chunk in fills.chunks(3) {
            let frame = format!(
                r#"{{"channel":"userFills","data":{{"isSnapshot":true,"user":"0x2e3d94f0562703b25c83308a05046ddaf9a8dd14","fills":{}}}}}"#,
                serde_json::Value::Array(chunk.to_vec())
            );
            let fast = fast_fills(&frame);
            assert!(fast.is_some(), "{frame}");
            assert_eq!(fast, general_with_snapshot(&frame));
        }
    }

    /// The recorded frame (HYPE, 2025-12-04, testdata/fixtures/hyperliquid/ws) takes the fast
    /// path and decodes as the general decoder decodes it.
    #[test]
    fn the_recorded_book_frame_takes_the_fast_path() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/fixtures/hyperliquid/ws/l2Book_HYPE_trimmed_2025-12-04.jsonl"
        ))
        .unwrap();
        let frame = text.lines().nth(1).unwrap();
        let fast = fast_book(frame);
        assert!(fast.is_some());
        assert_eq!(fast, general(frame));
    }
}
