//! Live progress in chat: the message that accepted a `/run` is edited with the task's status and
//! the last lines of its output — only when something changed, at most every 3 s per task, one
//! edit per chat and scan, escaped, and finally with the terminal status. Against a real database
//! and conversation; the acceptance message and the edits go through the outbox and the sender
//! to the fake Bot API.

use domain::{TaskStatus, Timestamp};
use telegram::render::{MAX_MESSAGE_UTF16, utf16_len};

use crate::support_relay::{RelayFixture as Fixture, TG, at, only_our_tags, the_edit};

#[tokio::test]
async fn the_acceptance_message_shows_the_output_tail_once_per_change() {
    let f = Fixture::new().await;
    let (task_id, update_id) = f.run("seq 1 20").await;
    f.deliver().await;
    let message_id = f.acceptance_message_id(update_id).await;
    let t0 = Timestamp::now();

    // Queued, nothing happened yet: the acceptance message stands.
    assert!(f.edits(t0).await.is_empty());

    f.claim(&task_id).await;
    for i in 1..=20 {
        f.output(&task_id, &format!("line {i}\n")).await;
    }
    let out = f.edits(t0).await;
    let (edited, html) = the_edit(&out);
    assert_eq!(edited, message_id);
    assert!(html.contains(task_id.as_str()), "{html}");
    assert!(html.contains("RUNNING"), "{html}");
    assert!(html.contains("<code>seq 1 20</code>"), "{html}");
    // The last 15 lines, in order.
    assert!(html.contains("<pre>line 6\nline 7\n"), "{html}");
    assert!(html.contains("line 20</pre>"), "{html}");
    assert!(!html.contains("line 5\n"), "{html}");
    // 1 status event + 20 output events.
    assert_eq!(out[0].dedupe_key, format!("p:{task_id}:21"));

    // The edit reaches Telegram as an edit of that message.
    f.deliver().await;
    let calls = f.fake.calls_to("editMessageText");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["message_id"], message_id);
    assert_eq!(calls[0]["text"], html.as_str());
    assert_eq!(calls[0]["parse_mode"], "HTML");

    // Nothing changed: nothing to send, however often and late we look.
    assert!(f.edits(at(t0, 10_000)).await.is_empty());
    assert!(f.edits(at(t0, 20_000)).await.is_empty());

    // New output: one more edit with it.
    f.output(&task_id, "line 21\n").await;
    let (_, html) = the_edit(&f.edits(at(t0, 30_000)).await);
    assert!(
        html.contains("line 21</pre>") && !html.contains("line 6\n"),
        "{html}"
    );
    assert!(f.edits(at(t0, 40_000)).await.is_empty());
}

#[tokio::test]
async fn edits_are_throttled_to_one_per_task_every_three_seconds() {
    let f = Fixture::new().await;
    let (task_id, _) = f.run("echo tick").await;
    f.deliver().await;
    f.claim(&task_id).await;
    f.output(&task_id, "tick 1\n").await;
    let t0 = Timestamp::now();
    assert_eq!(f.edits(t0).await.len(), 1);

    f.output(&task_id, "tick 2\n").await;
    assert!(f.edits(at(t0, 1_000)).await.is_empty());
    assert!(f.edits(at(t0, 2_999)).await.is_empty());
    let (_, html) = the_edit(&f.edits(at(t0, 3_000)).await);
    assert!(html.contains("tick 1\ntick 2</pre>"), "{html}");
    // Called again at the same moment (a second process, a repeated scan): nothing twice.
    assert!(f.edits(at(t0, 3_000)).await.is_empty());

    // A burst of output within the window becomes one edit showing all of it.
    for i in 3..=50 {
        f.output(&task_id, &format!("tick {i}\n")).await;
    }
    assert!(f.edits(at(t0, 4_000)).await.is_empty());
    let (_, html) = the_edit(&f.edits(at(t0, 6_000)).await);
    assert!(html.contains("tick 50</pre>"), "{html}");
    f.deliver().await;
    assert_eq!(f.fake.calls_to("editMessageText").len(), 3);
}

#[tokio::test]
async fn one_edit_per_chat_and_scan() {
    let f = Fixture::new().await;
    let (first, _) = f.run("echo one").await;
    let (second, _) = f.run("echo two").await;
    f.deliver().await;
    f.claim(&first).await;
    f.claim(&second).await;
    f.output(&first, "one\n").await;
    f.output(&second, "two\n").await;
    let t0 = Timestamp::now();
    let (_, a) = the_edit(&f.edits(t0).await);
    let (_, b) = the_edit(&f.edits(at(t0, 2_000)).await);
    let mut shown = [a, b].map(|h| {
        if h.contains(first.as_str()) {
            "one"
        } else {
            assert!(h.contains(second.as_str()), "{h}");
            "two"
        }
    });
    shown.sort_unstable();
    assert_eq!(shown, ["one", "two"]);
    assert!(f.edits(at(t0, 4_000)).await.is_empty());
}

#[tokio::test]
async fn no_edit_before_the_acceptance_message_is_sent() {
    let f = Fixture::new().await;
    let (task_id, update_id) = f.run("echo wait").await;
    f.claim(&task_id).await;
    f.output(&task_id, "early\n").await;
    let t0 = Timestamp::now();
    assert!(f.edits(t0).await.is_empty());
    f.deliver().await;
    let message_id = f.acceptance_message_id(update_id).await;
    let (edited, html) = the_edit(&f.edits(t0).await);
    assert_eq!(edited, message_id);
    assert!(html.contains("early</pre>"), "{html}");
}

#[tokio::test]
async fn hostile_output_is_escaped_and_kept_within_the_limit() {
    let f = Fixture::new().await;
    let (task_id, _) = f.run("cat evil").await;
    f.deliver().await;
    f.claim(&task_id).await;
    let hostile =
        "</pre><a href=\"https://evil.example\">click</a> &lt;b&gt; <tg-spoiler>x</tg-spoiler>\n";
    f.output(&task_id, hostile).await;
    let t0 = Timestamp::now();
    let (_, html) = the_edit(&f.edits(t0).await);
    only_our_tags(&html);
    assert!(
        html.contains("&lt;/pre&gt;&lt;a href=&quot;https://evil.example&quot;&gt;click"),
        "{html}"
    );
    assert!(html.contains("&amp;lt;b&amp;gt;"), "{html}");

    // A huge line of markup characters and emoji: cut from the front, whole entities, within
    // Telegram's limit.
    f.output(&task_id, &"<&>\"😀".repeat(20_000)).await;
    let (_, html) = the_edit(&f.edits(at(t0, 3_000)).await);
    assert!(
        utf16_len(&html) <= MAX_MESSAGE_UTF16,
        "{}",
        utf16_len(&html)
    );
    only_our_tags(&html);
    for (i, _) in html.match_indices('&') {
        let rest = &html[i..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;"]
                .iter()
                .any(|e| rest.starts_with(e)),
            "broken entity at {i}"
        );
    }
    assert!(html.contains("<pre>…"), "cut at the front");
    assert!(html.contains("&quot;😀</pre>"), "the end is shown");
    f.deliver().await;
    assert_eq!(f.fake.calls_to("editMessageText").len(), 2);
}

#[tokio::test]
async fn the_last_edit_shows_the_terminal_status() {
    let f = Fixture::new().await;
    let (task_id, _) = f.run("cat build.log").await;
    f.deliver().await;
    f.claim(&task_id).await;
    f.output(&task_id, "compiling\n").await;
    let t0 = Timestamp::now();
    assert_eq!(f.edits(t0).await.len(), 1);

    f.output(&task_id, "error: <boom>\n").await;
    f.finish(
        &task_id,
        TaskStatus::Failed,
        2,
        "compiling\nerror: <boom>\n",
    )
    .await;
    // Finished right after an edit: the final edit waits for the throttle, then comes.
    assert!(f.edits(at(t0, 1_000)).await.is_empty());
    let (_, html) = the_edit(&f.edits(at(t0, 3_000)).await);
    assert!(html.contains("FAILED"), "{html}");
    assert!(html.contains("exit code <b>2</b>"), "{html}");
    assert!(html.contains("error: &lt;boom&gt;</pre>"), "{html}");
    assert!(!html.contains("RUNNING"), "{html}");
    only_our_tags(&html);

    // Finished and shown: never edited again.
    assert!(f.edits(at(t0, 10_000)).await.is_empty());
    assert!(f.edits(at(t0, 60_000)).await.is_empty());
    f.deliver().await;
    let calls = f.fake.calls_to("editMessageText");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1]["text"], html.as_str());
}

#[tokio::test]
async fn a_task_that_finishes_between_scans_gets_one_final_edit() {
    let f = Fixture::new().await;
    let (task_id, _) = f.run("true").await;
    f.deliver().await;
    f.claim(&task_id).await;
    f.finish(&task_id, TaskStatus::Succeeded, 0, "").await;
    let t0 = Timestamp::now();
    let (_, html) = the_edit(&f.edits(t0).await);
    assert!(
        html.contains("SUCCEEDED") && html.contains("exit code <b>0</b>"),
        "{html}"
    );
    assert!(html.contains("(no output)"), "{html}");
    assert!(f.edits(at(t0, 5_000)).await.is_empty());
}

#[tokio::test]
async fn tasks_not_started_from_telegram_are_left_alone() {
    let f = Fixture::new().await;
    let user = f.fx.coord.user_by_telegram(TG).await.unwrap().unwrap();
    let (task, _) =
        f.fx.coord
            .create_task(
                &user,
                coordinator::NewTask {
                    input: domain::TaskInput::Command("echo api".to_owned()),
                    environment: None,
                    idempotency_key: Some("api-key-1".to_owned()),
                },
            )
            .await
            .unwrap();
    f.claim(&task.task_id).await;
    f.output(&task.task_id, "from the API\n").await;
    assert!(f.edits(Timestamp::now()).await.is_empty());
}
