/*
 * Unit tests for the whatsapp plugin's webhook payload parser and its
 * signature check (plugins/whatsapp/payload.c): Meta's documented
 * examples of every message type and status, several entries, changes
 * and messages in one body, malformed items left out and counted, the
 * bounds, and X-Hub-Signature-256 against a vector from openssl dgst.
 *
 * The payloads are Meta's examples (developers.facebook.com, WhatsApp
 * Cloud API webhooks reference) with single quotes for double ones, to
 * keep them readable in C: sq() swaps them back.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/whatsapp/wa.h"

#define PNID	"106540352242922"
#define WAMID	"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
#define WAMID2	"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MUE0NDEyQ0FENEJBMDRCMjUA"

/* Meta's envelope around one change's value (without its braces). */
#define ENV(v)								\
	"{'object': 'whatsapp_business_account', 'entry': [{"		\
	"'id': '102290129340398', 'changes': [{'value': {"		\
	"'messaging_product': 'whatsapp', 'metadata': {"		\
	"'display_phone_number': '15550783881', "			\
	"'phone_number_id': '" PNID "'}, " v "}, "			\
	"'field': 'messages'}]}]}"

#define CONTACT								\
	"'contacts': [{'profile': {'name': 'Sheena Nelson'}, "		\
	"'wa_id': '16505551234'}]"

/* One message of Meta's from Sheena Nelson: its type's fields in f. */
#define MSG(f)								\
	ENV(CONTACT ", 'messages': [{'from': '16505551234', "		\
	"'id': '" WAMID "', 'timestamp': '1749416383', " f "}]")

static char *
sq(const char *s)
{
	char	*d, *p;

	d = strdup(s);
	assert_non_null(d);
	for (p = d; *p != '\0'; p++) {
		if (*p == '\'')
			*p = '"';
	}
	return (d);
}

/* s (single-quoted) parsed: its items, which must be want_items. */
static json_t *
parse(const char *s, size_t want_items, size_t want_skipped)
{
	json_t	*items;
	char	*d, err[128];
	size_t	 skipped = 99;

	d = sq(s);
	items = wa_payload_parse(d, strlen(d), &skipped, err, sizeof(err));
	free(d);
	if (items == NULL)
		fail_msg("parse: %s", err);
	assert_true(json_is_array(items));
	assert_int_equal(json_array_size(items), want_items);
	assert_int_equal(skipped, want_skipped);
	return (items);
}

static const char *
str(json_t *o, const char *path)
{
	char		 key[64];
	const char	*dot;

	while ((dot = strchr(path, '.')) != NULL) {
		assert_true((size_t)(dot - path) < sizeof(key));
		memcpy(key, path, dot - path);
		key[dot - path] = '\0';
		o = json_object_get(o, key);
		path = dot + 1;
	}
	o = json_object_get(o, path);
	if (!json_is_string(o))
		fail_msg("%s: not a string", path);
	return (json_string_value(o));
}

static void
test_text(void **state)
{
	json_t	*items, *it;

	(void)state;
	items = parse(MSG("'type': 'text', "
	    "'text': {'body': 'Does it come in another color?'}"), 1, 0);
	it = json_array_get(items, 0);
	assert_string_equal(str(it, "kind"), "message");
	assert_string_equal(str(it, "id"), WAMID);
	assert_string_equal(str(it, "from"), "16505551234");
	assert_string_equal(str(it, "name"), "Sheena Nelson");
	assert_true(json_is_integer(json_object_get(it, "timestamp")));
	assert_int_equal(json_integer_value(json_object_get(it, "timestamp")),
	    1749416383);
	assert_string_equal(str(it, "phone_number_id"), PNID);
	assert_string_equal(str(it, "type"), "text");
	assert_string_equal(str(it, "text"), "Does it come in another color?");
	assert_null(json_object_get(it, "context"));
	assert_null(json_object_get(it, "media"));
	json_decref(items);

	/* No contacts: the name is empty. */
	items = parse(ENV("'messages': [{'from': '16505551234', 'id': '"
	    WAMID "', 'timestamp': '1749416383', 'type': 'text', "
	    "'text': {'body': 'hi'}}]"), 1, 0);
	assert_string_equal(str(json_array_get(items, 0), "name"), "");
	json_decref(items);
}

static void
test_media(void **state)
{
	json_t	*items, *it;

	(void)state;
	items = parse(MSG("'type': 'image', 'image': {'caption': "
	    "'This is a caption', 'mime_type': 'image/jpeg', 'sha256': "
	    "'NMIKYGJRfyQrBqFJOkFZ8xp1oxT0hBcW7kHzmUqSpmM=', "
	    "'id': '1479537139650973'}"), 1, 0);
	it = json_array_get(items, 0);
	assert_string_equal(str(it, "type"), "image");
	assert_string_equal(str(it, "media.id"), "1479537139650973");
	assert_string_equal(str(it, "media.mime_type"), "image/jpeg");
	assert_string_equal(str(it, "media.sha256"),
	    "NMIKYGJRfyQrBqFJOkFZ8xp1oxT0hBcW7kHzmUqSpmM=");
	assert_null(json_object_get(json_object_get(it, "media"), "filename"));
	assert_string_equal(str(it, "caption"), "This is a caption");
	json_decref(items);

	items = parse(MSG("'type': 'audio', 'audio': {'mime_type': "
	    "'audio/ogg; codecs=opus', 'sha256': "
	    "'7Kc9dqVkXhEC1YYTIvvoWoGJpWy4EJKEgMcD4bhtXJY=', "
	    "'id': '1003383421387256', 'voice': true}"), 1, 0);
	it = json_array_get(items, 0);
	assert_string_equal(str(it, "type"), "audio");
	assert_string_equal(str(it, "media.mime_type"),
	    "audio/ogg; codecs=opus");
	assert_null(json_object_get(it, "caption"));
	json_decref(items);

	items = parse(MSG("'type': 'video', 'video': {'caption': "
	    "'Check out my new video', 'mime_type': 'video/mp4', 'sha256': "
	    "'a3d2f7b1c8e4d9a6b5c0e1f2a3b4c5d6"
	    "e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2', "
	    "'id': '1166846181421424'}"), 1, 0);
	it = json_array_get(items, 0);
	assert_string_equal(str(it, "type"), "video");
	assert_string_equal(str(it, "caption"), "Check out my new video");
	json_decref(items);

	items = parse(MSG("'type': 'document', 'document': {'caption': "
	    "'Lucky Shrub Invoice', 'filename': 'lucky-shrub-invoice.pdf', "
	    "'mime_type': 'application/pdf', 'sha256': "
	    "'799a7ef2d5a1e5fa1ae1a6b8b4e4a0c4"
	    "aa3b4f1b8f9e0e5c9d2a1b3c4d5e6f70', "
	    "'id': '1003383421387256'}"), 1, 0);
	it = json_array_get(items, 0);
	assert_string_equal(str(it, "type"), "document");
	assert_string_equal(str(it, "media.filename"),
	    "lucky-shrub-invoice.pdf");
	assert_string_equal(str(it, "media.mime_type"), "application/pdf");
	assert_string_equal(str(it, "caption"), "Lucky Shrub Invoice");
	json_decref(items);

	items = parse(MSG("'type': 'sticker', 'sticker': {'mime_type': "
	    "'image/webp', 'sha256': "
	    "'3b1d5a8f0c9e2b4d6f8a0c2e4b6d8f0a"
	    "2c4e6b8d0f2a4c6e8b0d2f4a6c8e0b2d', "
	    "'id': '1003383421387256', 'animated': false}"), 1, 0);
	it = json_array_get(items, 0);
	assert_string_equal(str(it, "type"), "sticker");
	assert_string_equal(str(it, "media.mime_type"), "image/webp");
	json_decref(items);

	/* A media message without its id is left out. */
	json_decref(parse(MSG("'type': 'image', 'image': {'mime_type': "
	    "'image/jpeg', 'sha256': 'x'}"), 0, 1));
	json_decref(parse(MSG("'type': 'image', 'image': {'id': ''}"), 0, 1));
	json_decref(parse(MSG("'type': 'image'"), 0, 1));
}

static void
test_location(void **state)
{
	json_t	*items, *loc;

	(void)state;
	items = parse(MSG("'type': 'location', 'location': {'address': "
	    "'1 Hacker Way, Menlo Park, CA 94025', 'latitude': 37.483307, "
	    "'longitude': -122.148981, 'name': 'Meta Headquarters', "
	    "'url': 'https://meta.com'}"), 1, 0);
	assert_string_equal(str(json_array_get(items, 0), "type"), "location");
	loc = json_object_get(json_array_get(items, 0), "location");
	assert_true(json_is_real(json_object_get(loc, "latitude")));
	assert_true(json_real_value(json_object_get(loc, "latitude")) ==
	    37.483307);
	assert_true(json_real_value(json_object_get(loc, "longitude")) ==
	    -122.148981);
	assert_string_equal(str(loc, "name"), "Meta Headquarters");
	assert_string_equal(str(loc, "address"),
	    "1 Hacker Way, Menlo Park, CA 94025");
	assert_string_equal(str(loc, "url"), "https://meta.com");
	json_decref(items);

	/* Integers stay integers; name, address and url are optional. */
	items = parse(MSG("'type': 'location', 'location': {'latitude': -90, "
	    "'longitude': 180}"), 1, 0);
	loc = json_object_get(json_array_get(items, 0), "location");
	assert_true(json_is_integer(json_object_get(loc, "latitude")));
	assert_int_equal(json_integer_value(json_object_get(loc, "longitude")),
	    180);
	assert_null(json_object_get(loc, "name"));
	json_decref(items);

	json_decref(parse(MSG("'type': 'location', 'location': "
	    "{'latitude': 90.5, 'longitude': 0}"), 0, 1));
	json_decref(parse(MSG("'type': 'location', 'location': "
	    "{'latitude': 0, 'longitude': -180.01}"), 0, 1));
	json_decref(parse(MSG("'type': 'location', 'location': "
	    "{'latitude': '37.4', 'longitude': 0}"), 0, 1));
	json_decref(parse(MSG("'type': 'location', 'location': "
	    "{'latitude': 37.4}"), 0, 1));
}

static void
test_reaction(void **state)
{
	json_t	*items, *it;

	(void)state;
	items = parse(MSG("'type': 'reaction', 'reaction': {'message_id': '"
	    WAMID2 "', 'emoji': '\\uD83D\\uDE00'}"), 1, 0);
	it = json_array_get(items, 0);
	assert_string_equal(str(it, "type"), "reaction");
	assert_string_equal(str(it, "reaction.message_id"), WAMID2);
	assert_string_equal(str(it, "reaction.emoji"), "\xf0\x9f\x98\x80");
	json_decref(items);

	/* Taken back: Meta leaves the emoji out. */
	items = parse(MSG("'type': 'reaction', 'reaction': {'message_id': '"
	    WAMID2 "'}"), 1, 0);
	assert_string_equal(str(json_array_get(items, 0), "reaction.emoji"),
	    "");
	json_decref(items);

	json_decref(parse(MSG("'type': 'reaction', 'reaction': "
	    "{'emoji': 'x'}"), 0, 1));
}

static void
test_interactive(void **state)
{
	json_t	*items, *it;

	(void)state;
	items = parse(MSG("'type': 'interactive', 'context': {'from': "
	    "'15550783881', 'id': '" WAMID2 "'}, 'interactive': {"
	    "'type': 'button_reply', 'button_reply': {'id': "
	    "'unique-button-identifier-here', 'title': 'button-text'}}"),
	    1, 0);
	it = json_array_get(items, 0);
	assert_string_equal(str(it, "type"), "text");
	assert_string_equal(str(it, "text"), "button-text");
	assert_string_equal(str(it, "interactive.type"), "button_reply");
	assert_string_equal(str(it, "interactive.id"),
	    "unique-button-identifier-here");
	assert_string_equal(str(it, "interactive.title"), "button-text");
	assert_null(json_object_get(json_object_get(it, "interactive"),
	    "description"));
	assert_string_equal(str(it, "context.id"), WAMID2);
	json_decref(items);

	items = parse(MSG("'type': 'interactive', 'interactive': {"
	    "'type': 'list_reply', 'list_reply': {'id': 'list_reply_id', "
	    "'title': 'list_reply_title', 'description': "
	    "'list_reply_description'}}"), 1, 0);
	it = json_array_get(items, 0);
	assert_string_equal(str(it, "type"), "text");
	assert_string_equal(str(it, "text"), "list_reply_title");
	assert_string_equal(str(it, "interactive.type"), "list_reply");
	assert_string_equal(str(it, "interactive.id"), "list_reply_id");
	assert_string_equal(str(it, "interactive.description"),
	    "list_reply_description");
	json_decref(items);

	/* A template's quick-reply button. */
	items = parse(MSG("'type': 'button', 'context': {'from': "
	    "'15550783881', 'id': '" WAMID2 "'}, 'button': {'text': 'No', "
	    "'payload': 'No-Button-Payload'}"), 1, 0);
	it = json_array_get(items, 0);
	assert_string_equal(str(it, "type"), "text");
	assert_string_equal(str(it, "text"), "No");
	assert_string_equal(str(it, "interactive.type"), "button");
	assert_string_equal(str(it, "interactive.id"), "No-Button-Payload");
	assert_string_equal(str(it, "interactive.title"), "No");
	json_decref(items);

	/* A flow's answer is not one we show. */
	items = parse(MSG("'type': 'interactive', 'interactive': {"
	    "'type': 'nfm_reply', 'nfm_reply': {'response_json': '{}', "
	    "'body': 'Sent', 'name': 'flow'}}"), 1, 0);
	assert_string_equal(str(json_array_get(items, 0), "type"),
	    "unsupported");
	assert_string_equal(str(json_array_get(items, 0), "raw_type"),
	    "interactive");
	json_decref(items);

	json_decref(parse(MSG("'type': 'interactive', 'interactive': {"
	    "'type': 'button_reply', 'button_reply': {'id': 'x'}}"), 0, 1));
	json_decref(parse(MSG("'type': 'button', 'button': "
	    "{'payload': 'x'}"), 0, 1));
}

static void
test_unsupported(void **state)
{
	json_t		*items, *it;
	size_t		 i;
	const char	*want[] = { "unknown", "unsupported", "contacts",
			    "order", "system", "unknown", "unknown" };

	(void)state;
	items = parse(ENV(CONTACT ", 'messages': ["
	    "{'from': '16505551234', 'id': 'wamid.A1', 'timestamp': "
	    "'1749416383', 'errors': [{'code': 131051, 'details': "
	    "'Message type is not currently supported', 'title': "
	    "'Unsupported message type'}], 'type': 'unknown'}, "
	    "{'from': '16505551234', 'id': 'wamid.A2', 'timestamp': "
	    "'1749416383', 'errors': [{'code': 131051, 'title': "
	    "'Message type unknown', 'message': 'Message type unknown', "
	    "'error_data': {'details': 'Message type is currently not "
	    "supported.'}}], 'type': 'unsupported'}, "
	    "{'from': '16505551234', 'id': 'wamid.A3', 'timestamp': "
	    "'1749416383', 'type': 'contacts', 'contacts': [{'name': {"
	    "'formatted_name': 'Barbara J. Johnson', 'first_name': "
	    "'Barbara'}, 'phones': [{'phone': '+1 (940) 555-1234', "
	    "'type': 'HOME'}]}]}, "
	    "{'from': '16505551234', 'id': 'wamid.A4', 'timestamp': "
	    "'1749416383', 'type': 'order', 'order': {'catalog_id': "
	    "'194836987003835', 'text': 'Order', 'product_items': [{"
	    "'product_retailer_id': 'di9ozbzfi4', 'quantity': 2, "
	    "'item_price': 30, 'currency': 'USD'}]}}, "
	    "{'from': '16505551234', 'id': 'wamid.A5', 'timestamp': "
	    "'1749416383', 'type': 'system', 'system': {'body': "
	    "'NAME changed from 16505551234 to 16505551235', 'new_wa_id': "
	    "'16505551235', 'type': 'user_changed_number'}}, "
	    "{'from': '16505551234', 'id': 'wamid.A6', 'timestamp': "
	    "'1749416383', 'type': 'Weird-Type!'}, "
	    "{'from': '16505551234', 'id': 'wamid.A7', 'timestamp': "
	    "'1749416383', 'type': 'abcdefghijklmnopqrstuvwxyzabcdefg'}]"),
	    7, 0);
	json_array_foreach(items, i, it) {
		assert_string_equal(str(it, "type"), "unsupported");
		assert_string_equal(str(it, "raw_type"), want[i]);
		assert_null(json_object_get(it, "text"));
	}
	json_decref(items);

	/* 32 letters are still a clean name. */
	items = parse(MSG("'type': 'abcdefghijklmnopqrstuvwxyz_abcde'"), 1, 0);
	assert_string_equal(str(json_array_get(items, 0), "raw_type"),
	    "abcdefghijklmnopqrstuvwxyz_abcde");
	json_decref(items);
}

static void
test_statuses(void **state)
{
	json_t		*items, *it, *err;
	size_t		 i;
	const char	*want[] = { "sent", "delivered", "read", "failed" };

	(void)state;
	items = parse(ENV("'statuses': ["
	    "{'id': '" WAMID2 "', 'status': 'sent', 'timestamp': "
	    "'1750263773', 'recipient_id': '16505551234', "
	    "'conversation': {'id': '6ceb9d929c0f4eb4b3b3fa6a4f5fb27e', "
	    "'expiration_timestamp': '1750350180', 'origin': {'type': "
	    "'utility'}}, 'pricing': {'billable': true, 'pricing_model': "
	    "'PMP', 'category': 'utility', 'type': 'regular'}}, "
	    "{'id': '" WAMID2 "', 'status': 'delivered', 'timestamp': "
	    "'1750263774', 'recipient_id': '16505551234', "
	    "'biz_opaque_callback_data': 'lead-1234'}, "
	    "{'id': '" WAMID2 "', 'status': 'read', 'timestamp': "
	    "'1750263775', 'recipient_id': '16505551234'}, "
	    "{'id': '" WAMID2 "', 'status': 'failed', 'timestamp': "
	    "'1750263776', 'recipient_id': '16505551234', 'errors': [{"
	    "'code': 131047, 'title': 'Re-engagement message', "
	    "'message': 'Re-engagement message', 'error_data': {'details': "
	    "'Message failed to send because more than 24 hours have "
	    "passed since the customer last replied to this number.'}, "
	    "'href': 'https://developers.facebook.com/docs/whatsapp/"
	    "cloud-api/support/error-codes/'}]}, "
	    "{'id': '" WAMID2 "', 'status': 'deleted', 'timestamp': "
	    "'1750263777', 'recipient_id': '16505551234'}, "
	    "{'id': '" WAMID2 "', 'status': 'warning', 'timestamp': "
	    "'1750263778', 'recipient_id': '16505551234'}]"), 4, 2);
	json_array_foreach(items, i, it) {
		assert_string_equal(str(it, "kind"), "status");
		assert_string_equal(str(it, "id"), WAMID2);
		assert_string_equal(str(it, "status"), want[i]);
		assert_int_equal(json_integer_value(json_object_get(it,
		    "timestamp")), 1750263773 + i);
		assert_string_equal(str(it, "recipient_id"), "16505551234");
		assert_string_equal(str(it, "phone_number_id"), PNID);
		if (i != 3)
			assert_null(json_object_get(it, "error"));
		if (i != 1)
			assert_null(json_object_get(it,
			    "biz_opaque_callback_data"));
	}
	assert_string_equal(str(json_array_get(items, 1),
	    "biz_opaque_callback_data"), "lead-1234");
	err = json_object_get(json_array_get(items, 3), "error");
	assert_int_equal(json_integer_value(json_object_get(err, "code")),
	    131047);
	assert_string_equal(str(err, "title"), "Re-engagement message");
	assert_string_equal(str(err, "detail"), "Message failed to send "
	    "because more than 24 hours have passed since the customer last "
	    "replied to this number.");
	json_decref(items);

	/* The title falls back to the message; details may be absent. */
	items = parse(ENV("'statuses': [{'id': '" WAMID2 "', 'status': "
	    "'failed', 'timestamp': '1750263776', 'recipient_id': "
	    "'16505551234', 'errors': [{'code': 131026, 'message': "
	    "'Message Undeliverable.'}, {'code': 1}]}]"), 1, 0);
	err = json_object_get(json_array_get(items, 0), "error");
	assert_int_equal(json_integer_value(json_object_get(err, "code")),
	    131026);
	assert_string_equal(str(err, "title"), "Message Undeliverable.");
	assert_null(json_object_get(err, "detail"));
	json_decref(items);

	/* Bad errors, a long opaque datum, a bad recipient: left out. */
	json_decref(parse(ENV("'statuses': ["
	    "{'id': '" WAMID2 "', 'status': 'failed', 'timestamp': "
	    "'1750263776', 'recipient_id': '16505551234', 'errors': "
	    "[{'code': '131047', 'title': 'x'}]}, "
	    "{'id': '" WAMID2 "', 'status': 'failed', 'timestamp': "
	    "'1750263776', 'recipient_id': '16505551234', 'errors': {}}, "
	    "{'id': '" WAMID2 "', 'status': 'read', 'timestamp': "
	    "'1750263776', 'recipient_id': '1650555123a'}, "
	    "{'id': '" WAMID2 "', 'status': 'read', 'timestamp': "
	    "'1750263776', 'recipient_id': '12345'}, "
	    "{'id': '" WAMID2 "', 'status': 'read', 'timestamp': "
	    "'1750263776', 'recipient_id': '1234567890123456'}, "
	    "{'id': '" WAMID2 "', 'status': 'read', 'timestamp': "
	    "'1750263776', 'recipient_id': '123456', "
	    "'biz_opaque_callback_data': 7}, "
	    "{'status': 'read', 'timestamp': '1750263776', "
	    "'recipient_id': '123456'}]"), 0, 7));
}

/* Two entries, one with two changes (and one change not ours). */
static void
test_batch(void **state)
{
	json_t		*items;
	size_t		 i;
	const char	*ids[] = { "wamid.B1", "wamid.B2", "wamid.B3",
			    "wamid.B4", "wamid.B5" };

	(void)state;
	items = parse("{'object': 'whatsapp_business_account', 'entry': ["
	    "{'id': '102290129340398', 'changes': ["
	    "{'value': {'messaging_product': 'whatsapp', 'metadata': {"
	    "'display_phone_number': '15550783881', 'phone_number_id': "
	    "'111'}, 'contacts': [{'profile': {'name': 'Ann'}, 'wa_id': "
	    "'16505550001'}, {'profile': {'name': 'Bob'}, 'wa_id': "
	    "'16505550002'}], 'messages': ["
	    "{'from': '16505550001', 'id': 'wamid.B1', 'timestamp': "
	    "'1749416381', 'type': 'text', 'text': {'body': 'one'}}, "
	    "{'from': '16505550002', 'id': 'wamid.B2', 'timestamp': "
	    "'1749416382', 'type': 'text', 'text': {'body': 'two'}}]}, "
	    "'field': 'messages'}, "
	    "{'value': {'phone_number': '15550783881', 'event': "
	    "'VERIFIED_ACCOUNT'}, 'field': 'account_update'}, "
	    "{'value': {'messaging_product': 'whatsapp', 'metadata': {"
	    "'display_phone_number': '15550783881', 'phone_number_id': "
	    "'111'}, 'messages': ["
	    "{'from': '16505550003', 'id': 'wamid.B3', 'timestamp': "
	    "'1749416383', 'type': 'text', 'text': {'body': 'three'}}]}, "
	    "'field': 'messages'}]}, "
	    "{'id': '102290129340399', 'changes': ["
	    "{'value': {'messaging_product': 'whatsapp', 'metadata': {"
	    "'display_phone_number': '15550783882', 'phone_number_id': "
	    "'222'}, 'contacts': [{'profile': {'name': 'Cy'}, 'wa_id': "
	    "'16505550004'}], 'messages': ["
	    "{'from': '16505550004', 'id': 'wamid.B4', 'timestamp': "
	    "'1749416384', 'type': 'text', 'text': {'body': 'four'}}, "
	    "{'from': '16505550004', 'id': 'wamid.B5', 'timestamp': "
	    "'1749416385', 'type': 'image', 'image': {'mime_type': "
	    "'image/jpeg', 'sha256': 'abc', 'id': '42'}}]}, "
	    "'field': 'messages'}]}]}", 5, 0);
	for (i = 0; i < 5; i++)
		assert_string_equal(str(json_array_get(items, i), "id"),
		    ids[i]);
	assert_string_equal(str(json_array_get(items, 0), "name"), "Ann");
	assert_string_equal(str(json_array_get(items, 1), "name"), "Bob");
	assert_string_equal(str(json_array_get(items, 2), "name"), "");
	assert_string_equal(str(json_array_get(items, 3), "name"), "Cy");
	assert_string_equal(str(json_array_get(items, 2), "phone_number_id"),
	    "111");
	assert_string_equal(str(json_array_get(items, 3), "phone_number_id"),
	    "222");
	assert_string_equal(str(json_array_get(items, 4), "type"), "image");
	json_decref(items);
}

/* entry[0].changes[0].value of a payload. */
static json_t *
value_of(json_t *o)
{
	return (json_object_get(json_array_get(json_object_get(json_array_get(
	    json_object_get(o, "entry"), 0), "changes"), 0), "value"));
}

/* A text message from a customer whose profile name has n characters:
 * kept, with the name when it fits (want_name) and "" when not. */
static void
check_name(size_t n, int want_name)
{
	json_t	*o, *items;
	char	*d, name[512];
	size_t	 skipped;

	assert_true(n < sizeof(name));
	memset(name, 'n', n);
	name[n] = '\0';
	d = sq(MSG("'type': 'text', 'text': {'body': 'x'}"));
	o = json_loads(d, 0, NULL);
	free(d);
	assert_non_null(o);
	json_object_set_new(json_object_get(json_array_get(json_object_get(
	    value_of(o), "contacts"), 0), "profile"), "name",
	    json_string(name));
	d = json_dumps(o, 0);
	assert_non_null(d);
	items = wa_payload_parse(d, strlen(d), &skipped, NULL, 0);
	assert_non_null(items);
	assert_int_equal(json_array_size(items), 1);
	assert_int_equal(skipped, 0);
	assert_int_equal(strlen(json_string_value(json_object_get(
	    json_array_get(items, 0), "name"))), want_name ? n : 0);
	json_decref(items);
	free(d);
	json_decref(o);
}

/* Bad items among good ones: the good ones stay, the bad are counted. */
static void
test_malformed(void **state)
{
	json_t	*items;

	(void)state;
	items = parse(ENV(CONTACT ", 'messages': ["
	    "{'from': '16505551234', 'id': 'wamid.OK1', 'timestamp': "
	    "'1749416383', 'type': 'text', 'text': {'body': 'ok'}}, "
	    "42, 'text', null, [], "
	    "{'from': '16505551234', 'timestamp': '1749416383', "
	    "'type': 'text', 'text': {'body': 'no id'}}, "
	    "{'from': '16505551234', 'id': '', 'timestamp': '1749416383', "
	    "'type': 'text', 'text': {'body': 'empty id'}}, "
	    "{'from': '16505551234', 'id': 'wamid with space', "
	    "'timestamp': '1749416383', 'type': 'text', 'text': {'body': "
	    "'x'}}, "
	    "{'from': '+16505551234', 'id': 'wamid.X', 'timestamp': "
	    "'1749416383', 'type': 'text', 'text': {'body': 'plus'}}, "
	    "{'from': '16505551234', 'id': 'wamid.X', 'type': 'text', "
	    "'text': {'body': 'no timestamp'}}, "
	    "{'from': '16505551234', 'id': 'wamid.X', 'timestamp': "
	    "'1749416383', 'text': {'body': 'no type'}}, "
	    "{'from': '16505551234', 'id': 'wamid.X', 'timestamp': "
	    "'1749416383', 'type': 'text', 'text': {'body': 7}}, "
	    "{'from': '16505551234', 'id': 'wamid.X', 'timestamp': "
	    "'1749416383', 'type': 'text', 'text': 'flat'}, "
	    "{'from': '16505551234', 'id': 'wamid.X', 'timestamp': "
	    "'1749416383', 'type': 'text', 'text': {'body': 'x'}, "
	    "'context': {'id': ''}}, "
	    "{'from': '16505551234', 'id': 'wamid.X', 'timestamp': "
	    "'1749416383', 'type': 'text', 'text': {'body': 'x'}, "
	    "'context': 'wamid.Y'}, "
	    "{'from': '16505551234', 'id': 'wamid.OK2', 'timestamp': "
	    "'1749416384', 'type': 'text', 'text': {'body': 'forwarded'}, "
	    "'context': {'forwarded': true}}], "
	    "'statuses': 'nope'"), 2, 14);
	assert_string_equal(str(json_array_get(items, 0), "id"), "wamid.OK1");
	assert_string_equal(str(json_array_get(items, 1), "id"), "wamid.OK2");
	assert_null(json_object_get(json_array_get(items, 1), "context"));
	json_decref(items);

	/* A change without a phone number id: all of its items are out. */
	json_decref(parse("{'object': 'whatsapp_business_account', 'entry': "
	    "[{'id': '1', 'changes': [{'value': {'metadata': {}, "
	    "'messages': [{'from': '16505551234', 'id': 'wamid.X', "
	    "'timestamp': '1749416383', 'type': 'text', 'text': {'body': "
	    "'x'}}], 'statuses': [{}]}, 'field': 'messages'}]}, 7, "
	    "{'changes': 'x'}]}", 0, 2));

	/* A profile name too long is dropped; the message stays. */
	check_name(257, 0);
	check_name(256, 1);
}

static void
test_not_payload(void **state)
{
	const char	*bodies[] = {
		"", "{", "not json", "42", "{\"object\": \"whatsapp_business_"
		    "account\", \"entry\": [}",
	};
	const char	*others[] = {
		"[]", "{}", "{\"object\": \"page\", \"entry\": []}",
		"{\"object\": \"whatsapp_business_account\"}",
		"{\"object\": \"whatsapp_business_account\", \"entry\": {}}",
		"{\"object\": 7, \"entry\": []}",
	};
	json_t		*items;
	char		 err[128];
	size_t		 i, skipped;

	(void)state;
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		skipped = 99;
		items = wa_payload_parse(bodies[i], strlen(bodies[i]), &skipped,
		    err, sizeof(err));
		assert_null(items);
		assert_string_equal(err, "not JSON");
		assert_int_equal(skipped, 0);
	}
	for (i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		items = wa_payload_parse(others[i], strlen(others[i]), &skipped,
		    err, sizeof(err));
		assert_null(items);
		assert_string_equal(err,
		    "not a whatsapp_business_account payload");
	}
	/* The length is the body's, not the string's. */
	assert_null(wa_payload_parse("{}xyz", 3, &skipped, err, sizeof(err)));
	assert_null(wa_payload_parse(NULL, 0, &skipped, err, 4));
	assert_string_equal(err, "not");

	/* An empty entry list is a payload with nothing in it. */
	items = parse("{'object': 'whatsapp_business_account', 'entry': []}",
	    0, 0);
	json_decref(items);
}

/* A text message of n copies of the UTF-8 character ch, as JSON. */
static char *
text_of(const char *ch, size_t n, const char *field)
{
	json_t	*o, *m;
	char	*d, *s;
	size_t	 l = strlen(ch), i;

	s = malloc(l * n + 1);
	assert_non_null(s);
	for (i = 0; i < n; i++)
		memcpy(s + i * l, ch, l);
	s[l * n] = '\0';
	d = sq(MSG("'type': 'image', 'image': {'id': '1'}, "
	    "'text': {'body': ''}"));
	o = json_loads(d, 0, NULL);
	free(d);
	assert_non_null(o);
	m = json_array_get(json_object_get(value_of(o), "messages"), 0);
	if (strcmp(field, "text") == 0) {
		json_object_set_new(m, "type", json_string("text"));
		json_object_set_new(json_object_get(m, "text"), "body",
		    json_string(s));
	} else
		json_object_set_new(json_object_get(m, "image"), "caption",
		    json_string(s));
	d = json_dumps(o, 0);
	assert_non_null(d);
	json_decref(o);
	free(s);
	return (d);
}

static void
check_len(const char *ch, size_t n, const char *field, size_t want)
{
	json_t	*items;
	char	*d;
	size_t	 skipped;

	d = text_of(ch, n, field);
	items = wa_payload_parse(d, strlen(d), &skipped, NULL, 0);
	assert_non_null(items);
	assert_int_equal(json_array_size(items), want);
	assert_int_equal(skipped, 1 - want);
	if (want == 1)
		assert_int_equal(strlen(str(json_array_get(items, 0),
		    strcmp(field, "text") == 0 ? "text" : "caption")),
		    strlen(ch) * n);
	json_decref(items);
	free(d);
}

static void
test_bounds(void **state)
{
	(void)state;
	check_len("a", WA_TEXT_MAX, "text", 1);
	check_len("a", WA_TEXT_MAX + 1, "text", 0);
	/* Characters, not bytes. */
	check_len("\xc3\xa9", WA_TEXT_MAX, "text", 1);
	check_len("\xf0\x9f\x98\x80", WA_TEXT_MAX, "text", 1);
	check_len("\xf0\x9f\x98\x80", WA_TEXT_MAX + 1, "text", 0);
	check_len("c", WA_CAPTION_MAX, "caption", 1);
	check_len("c", WA_CAPTION_MAX + 1, "caption", 0);
}

/* More than 1000 items: the first 1000 are kept. */
static void
test_limit(void **state)
{
	json_t	*o, *msgs, *items;
	char	*d, id[32];
	size_t	 i, skipped;

	(void)state;
	d = sq(ENV("'messages': []"));
	o = json_loads(d, 0, NULL);
	free(d);
	assert_non_null(o);
	msgs = json_object_get(value_of(o), "messages");
	for (i = 0; i < 1003; i++) {
		snprintf(id, sizeof(id), "wamid.L%zu", i);
		json_array_append_new(msgs, json_pack("{s:s, s:s, s:s, s:s, "
		    "s:{s:s}}", "from", "16505551234", "id", id, "timestamp",
		    "1749416383", "type", "text", "text", "body", "x"));
	}
	d = json_dumps(o, 0);
	assert_non_null(d);
	items = wa_payload_parse(d, strlen(d), &skipped, NULL, 0);
	assert_int_equal(json_array_size(items), 1000);
	assert_int_equal(skipped, 3);
	assert_string_equal(str(json_array_get(items, 999), "id"),
	    "wamid.L999");
	json_decref(items);
	free(d);
	json_decref(o);
}

static void
check_ts(const char *ts, long long want)
{
	json_t	*items;
	char	 buf[1024];

	snprintf(buf, sizeof(buf), ENV("'statuses': [{'id': 'wamid.T', "
	    "'status': 'read', 'timestamp': %s, 'recipient_id': "
	    "'16505551234'}]"), ts);
	items = parse(buf, want > 0, want > 0 ? 0 : 1);
	if (want > 0)
		assert_int_equal(json_integer_value(json_object_get(
		    json_array_get(items, 0), "timestamp")), want);
	json_decref(items);
}

static void
test_timestamps(void **state)
{
	(void)state;
	check_ts("'1749416383'", 1749416383);
	check_ts("1749416383", 1749416383);
	check_ts("'1'", 1);
	check_ts("'1099511627775'", 1099511627775LL);	/* 2^40 - 1 */
	check_ts("1099511627775", 1099511627775LL);
	check_ts("'1099511627776'", 0);
	check_ts("1099511627776", 0);
	check_ts("'0'", 0);
	check_ts("0", 0);
	check_ts("-5", 0);
	check_ts("'-5'", 0);
	check_ts("'+5'", 0);
	check_ts("''", 0);
	check_ts("'17494x6383'", 0);
	check_ts("' 1749416383'", 0);
	check_ts("'99999999999999999999999'", 0);
	check_ts("1749416383.5", 0);
	check_ts("null", 0);
	check_ts("true", 0);
}

/*
 * The vector: printf '%s' BODY | openssl dgst -sha256 -hmac SECRET
 * with the body and secret below.
 */
#define SIG_SECRET	"e5b3a2f0c9d84a1b"
#define SIG_BODY							\
	"{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":"	\
	"\"102290129340398\",\"changes\":[{\"value\":{\"messaging_product\""\
	":\"whatsapp\",\"metadata\":{\"display_phone_number\":"		\
	"\"15550783881\",\"phone_number_id\":\"106540352242922\"},"	\
	"\"statuses\":[{\"id\":\"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MUE0NDEy"\
	"Q0FENEJBMDRCMjUA\",\"status\":\"read\",\"timestamp\":"		\
	"\"1750263773\",\"recipient_id\":\"16505551234\"}]},\"field\":"	\
	"\"messages\"}]}]}"
#define SIG_HEX		"c9cc74063bce590800be2a0ddbeb777e"		\
			"76343009bd1d6d5c0843f8ab8f802e17"
#define SIG_HEX_UP	"C9CC74063BCE590800BE2A0DDBEB777E"		\
			"76343009BD1D6D5C0843F8AB8F802E17"

static void
test_signature(void **state)
{
	char		*body;
	json_t		*items;
	size_t		 len = strlen(SIG_BODY), skipped;

	(void)state;
	assert_int_equal(wa_signature_ok(SIG_SECRET, SIG_BODY, len,
	    "sha256=" SIG_HEX), 1);
	assert_int_equal(wa_signature_ok(SIG_SECRET, SIG_BODY, len,
	    "sha256=" SIG_HEX_UP), 1);
	assert_int_equal(wa_signature_ok(SIG_SECRET, SIG_BODY, len,
	    "sha256=C9cc74063bce590800be2a0ddbeb777e"
	    "76343009bd1d6d5c0843f8ab8f802e17"), 1);

	/* The body it signs parses into its one status. */
	items = wa_payload_parse(SIG_BODY, len, &skipped, NULL, 0);
	assert_int_equal(json_array_size(items), 1);
	json_decref(items);

	assert_int_equal(wa_signature_ok("e5b3a2f0c9d84a1c", SIG_BODY, len,
	    "sha256=" SIG_HEX), 0);
	assert_int_equal(wa_signature_ok("", SIG_BODY, len,
	    "sha256=" SIG_HEX), 0);
	assert_int_equal(wa_signature_ok(NULL, SIG_BODY, len,
	    "sha256=" SIG_HEX), 0);
	assert_int_equal(wa_signature_ok(SIG_SECRET, SIG_BODY, len, NULL), 0);

	/* One byte changed, one byte fewer. */
	body = strdup(SIG_BODY);
	assert_non_null(body);
	body[40] ^= 1;
	assert_int_equal(wa_signature_ok(SIG_SECRET, body, len,
	    "sha256=" SIG_HEX), 0);
	free(body);
	assert_int_equal(wa_signature_ok(SIG_SECRET, SIG_BODY, len - 1,
	    "sha256=" SIG_HEX), 0);

	/* The header's form. */
	assert_int_equal(wa_signature_ok(SIG_SECRET, SIG_BODY, len, SIG_HEX),
	    0);
	assert_int_equal(wa_signature_ok(SIG_SECRET, SIG_BODY, len,
	    "sha1=" SIG_HEX), 0);
	assert_int_equal(wa_signature_ok(SIG_SECRET, SIG_BODY, len,
	    "SHA256=" SIG_HEX), 0);
	assert_int_equal(wa_signature_ok(SIG_SECRET, SIG_BODY, len,
	    " sha256=" SIG_HEX), 0);
	assert_int_equal(wa_signature_ok(SIG_SECRET, SIG_BODY, len,
	    "sha256=" SIG_HEX " "), 0);
	assert_int_equal(wa_signature_ok(SIG_SECRET, SIG_BODY, len,
	    "sha256=c9cc74063bce590800be2a0ddbeb777e"
	    "76343009bd1d6d5c0843f8ab8f802e1"), 0);
	assert_int_equal(wa_signature_ok(SIG_SECRET, SIG_BODY, len,
	    "sha256=c9cc74063bce590800be2a0ddbeb777e"), 0);
	assert_int_equal(wa_signature_ok(SIG_SECRET, SIG_BODY, len,
	    "sha256=" SIG_HEX "00"), 0);
	assert_int_equal(wa_signature_ok(SIG_SECRET, SIG_BODY, len,
	    "sha256=g9cc74063bce590800be2a0ddbeb777e"
	    "76343009bd1d6d5c0843f8ab8f802e17"), 0);
	assert_int_equal(wa_signature_ok(SIG_SECRET, SIG_BODY, len,
	    "sha256="), 0);
	assert_int_equal(wa_signature_ok(SIG_SECRET, SIG_BODY, len, ""), 0);

	/* An empty body has a signature too. */
	assert_int_equal(wa_signature_ok("key", NULL, 0, "sha256="
	    "5d5d139563c95b5967b9bd9a8c9b233a9dedb45072794cd232dc1b74832607d0"),
	    1);
	assert_int_equal(wa_signature_ok("key", "", 0, "sha256="
	    "5d5d139563c95b5967b9bd9a8c9b233a9dedb45072794cd232dc1b74832607d0"),
	    1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_media),
		cmocka_unit_test(test_location),
		cmocka_unit_test(test_reaction),
		cmocka_unit_test(test_interactive),
		cmocka_unit_test(test_unsupported),
		cmocka_unit_test(test_statuses),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_not_payload),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_timestamps),
		cmocka_unit_test(test_signature),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
