use super::*;

/// Feeds `chunks` and drains every block, ending the stream after the last chunk.
fn parse(chunks: &[&[u8]]) -> Vec<SseBlock> {
    let mut parser = SseParser::default();
    let mut blocks = Vec::new();
    for chunk in chunks {
        parser.push(chunk);
        while let Some(block) = parser.next_block().unwrap() {
            blocks.push(block);
        }
    }
    parser.finish();
    while let Some(block) = parser.next_block().unwrap() {
        blocks.push(block);
    }
    blocks
}

fn data_of(blocks: &[SseBlock]) -> Vec<&str> {
    blocks.iter().filter_map(SseBlock::data).collect()
}

fn concat_raw(blocks: &[SseBlock]) -> Vec<u8> {
    blocks.iter().flat_map(|b| b.raw().to_vec()).collect()
}

/// Every way of cutting `stream` in two (and in one-byte pieces) yields the same blocks, and
/// the blocks' raw bytes give back the stream.
fn assert_split_invariant(stream: &[u8]) -> Vec<SseBlock> {
    let whole = parse(&[stream]);
    assert_eq!(concat_raw(&whole), stream);
    for cut in 0..=stream.len() {
        let (a, b) = stream.split_at(cut);
        assert_eq!(parse(&[a, b]), whole, "cut at byte {cut}");
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(parse(&bytes), whole, "one byte at a time");
    whole
}

#[test]
fn several_events_in_one_chunk_and_split_across_chunks() {
    let stream = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
    let blocks = assert_split_invariant(stream);
    assert_eq!(data_of(&blocks), ["{\"a\":1}", "{\"b\":2}", "[DONE]"]);
    assert!(blocks[2].is_done());
    assert!(blocks.iter().all(SseBlock::is_terminated));
}

#[test]
fn crlf_and_cr_line_endings() {
    for stream in [
        &b"data: one\r\n\r\ndata: two\r\n\r\n"[..],
        b"data: one\r\rdata: two\r\r",
        b"data: one\r\n\ndata: two\n\r\n",
    ] {
        let blocks = assert_split_invariant(stream);
        assert_eq!(data_of(&blocks), ["one", "two"], "{stream:?}");
    }
}

#[test]
fn a_cr_at_a_chunk_end_waits_for_the_next_byte() {
    let blocks = parse(&[b"data: x\r", b"\n\r", b"\ndata: y\n\n"]);
    assert_eq!(data_of(&blocks), ["x", "y"]);
    assert_eq!(blocks.len(), 2);
}

#[test]
fn comments_and_keep_alives_pass_through_without_dispatching() {
    let stream = b": keep-alive\n\ndata: a\n: inside\ndata: b\n\n:\n\n\n";
    let blocks = assert_split_invariant(stream);
    assert_eq!(data_of(&blocks), ["a\nb"]);
    assert_eq!(blocks.len(), 4);
    assert_eq!(blocks[0].raw(), b": keep-alive\n\n");
    assert_eq!(
        blocks[3].raw(),
        b"\n",
        "a stray blank line is its own block"
    );
}

#[test]
fn fields_follow_the_event_stream_grammar() {
    let stream = b"event: error\nid: 7\nretry: 10\ndata:no-space\ndata:  two spaces\nunknown\n\n";
    let blocks = parse(&[stream]);
    assert_eq!(blocks[0].event_type(), Some("error"));
    assert_eq!(blocks[0].id(), Some("7"));
    assert_eq!(blocks[0].data(), Some("no-space\n two spaces"));
    let empty = parse(&[b"data\n\ndata:\n\n"]);
    assert_eq!(
        data_of(&empty),
        Vec::<&str>::new(),
        "an empty data buffer dispatches nothing"
    );
}

#[test]
fn a_leading_byte_order_mark_is_ignored_but_kept_in_the_bytes() {
    let stream = b"\xEF\xBB\xBFdata: x\n\n";
    let blocks = assert_split_invariant(stream);
    assert_eq!(data_of(&blocks), ["x"]);
}

#[test]
fn an_unterminated_tail_comes_back_at_the_end_of_the_stream() {
    let blocks = parse(&[b"data: a\n\ndata: b\ndata: c"]);
    assert_eq!(data_of(&blocks), ["a", "b\nc"]);
    assert!(!blocks[1].is_terminated());
    assert_eq!(concat_raw(&blocks), b"data: a\n\ndata: b\ndata: c");

    let mut parser = SseParser::default();
    parser.push(b"data: b\n");
    assert_eq!(
        parser.next_block().unwrap(),
        None,
        "held until the stream ends"
    );
}

#[test]
fn an_oversized_event_is_a_typed_error_and_its_bytes_are_not_lost() {
    let mut parser = SseParser::new(16);
    parser.push(b"data: ok\n\ndata: 0123456789abcdef");
    let first = parser.next_block().unwrap().unwrap();
    assert_eq!(first.data(), Some("ok"));
    assert_eq!(
        parser.next_block(),
        Err(SseError::EventTooLarge { limit: 16 })
    );
    assert_eq!(parser.take_buffered(), b"data: 0123456789abcdef");
    assert!(parser.next_block().is_err(), "stays failed");
}

#[test]
fn the_bound_counts_the_whole_event_not_one_line() {
    let mut parser = SseParser::new(20);
    parser.push(b"data: 0123456789\ndata: 0123456789\n");
    assert!(parser.next_block().is_err());
}

#[test]
fn a_long_event_in_one_byte_chunks_parses_in_linear_time() {
    let mut stream = b"data: ".to_vec();
    stream.extend(std::iter::repeat_n(b'x', 200_000));
    stream.extend_from_slice(b"\n\n");
    let mut parser = SseParser::default();
    let mut blocks = 0;
    for byte in stream.chunks(1) {
        parser.push(byte);
        while parser.next_block().unwrap().is_some() {
            blocks += 1;
        }
    }
    assert_eq!(blocks, 1);
}

#[test]
fn with_data_reserializes_in_the_blocks_own_line_endings() {
    let blocks = parse(&[b": c\r\nevent: delta\r\nid: 3\r\ndata: {\"x\":1}\r\n\r\n"]);
    let rewritten = blocks[0].with_data("{\"y\":2}\nsecond");
    assert_eq!(
        rewritten,
        b"event: delta\r\nid: 3\r\ndata: {\"y\":2}\r\ndata: second\r\n\r\n"
    );
    let again = parse(&[&rewritten]);
    assert_eq!(again[0].data(), Some("{\"y\":2}\nsecond"));
    assert_eq!(again[0].event_type(), Some("delta"));
}

fn ndjson(chunks: &[&[u8]]) -> Vec<NdjsonLine> {
    let mut parser = NdjsonParser::default();
    let mut lines = Vec::new();
    for chunk in chunks {
        parser.push(chunk);
        while let Some(line) = parser.next_line().unwrap() {
            lines.push(line);
        }
    }
    parser.finish();
    while let Some(line) = parser.next_line().unwrap() {
        lines.push(line);
    }
    lines
}

#[test]
fn ndjson_lines_split_anywhere_come_out_whole() {
    let stream = b"{\"a\":1}\n\n{\"b\":2}\r\n{\"done\":true}";
    let whole = ndjson(&[stream]);
    let json: Vec<&[u8]> = whole.iter().map(NdjsonLine::json).collect();
    assert_eq!(
        json,
        [&b"{\"a\":1}"[..], b"", b"{\"b\":2}", b"{\"done\":true}"]
    );
    assert!(whole[1].is_blank());
    for cut in 0..=stream.len() {
        let (a, b) = stream.split_at(cut);
        assert_eq!(ndjson(&[a, b]), whole, "cut at byte {cut}");
    }
    let raw: Vec<u8> = whole.iter().flat_map(|l| l.raw().to_vec()).collect();
    assert_eq!(raw, stream);
}

#[test]
fn an_overlong_ndjson_line_is_a_typed_error() {
    let mut parser = NdjsonParser::new(8);
    parser.push(b"{\"a\":1}\n{\"long\":\"0123456789\"");
    assert!(parser.next_line().unwrap().is_some());
    assert_eq!(parser.next_line(), Err(SseError::LineTooLong { limit: 8 }));
    assert_eq!(parser.take_buffered(), b"{\"long\":\"0123456789\"");
}

#[test]
fn every_split_of_a_real_llama_server_stream_gives_the_same_events() {
    let streams: [&[u8]; 2] = [
        include_bytes!("../../tests/fixtures/streams/llama-chat-c-stream-usage.sse"),
        include_bytes!("../../tests/fixtures/streams/llama-completion-stream-usage.sse"),
    ];
    for stream in streams {
        let blocks = assert_split_invariant(stream);
        let events = data_of(&blocks);
        assert!(events.len() > 10, "{} events", events.len());
        assert_eq!(events.last(), Some(&"[DONE]"));
        for data in &events[..events.len() - 1] {
            assert!(
                serde_json::from_str::<serde_json::Value>(data).is_ok(),
                "{data}"
            );
        }
    }
}
