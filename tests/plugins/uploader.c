/*
 * Test plugin for multipart uploads (api->req_parts, ABI 1.3) and for
 * bodies the host streamed to a file ([host] body_memory_max).
 *
 * Routes (public: this is a test plugin):
 *   POST /api/v1/uploader/parts  multipart/form-data, up to 128 MiB ->
 *        {parts: [{name, filename, content_type, len, where, sha256}]}:
 *        where is "memory" (the part's bytes are in data) or "file" (read
 *        with pread() from the host's fd, 64 KiB at a time); sha256 is
 *        computed over the bytes so read
 *   POST /api/v1/uploader/raw    any body up to 4 MiB -> {len, sha256} of
 *        api->req_body (the bytes in memory, wherever the host kept them)
 *   POST /api/v1/uploader/json   {text} up to 4 MiB of JSON, through the
 *        host's field table -> {len}: the text's length
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <switchboard/plugin.h>

#define CHUNK		(64 * 1024)
#define PARTS_MAX	(128 * 1024 * 1024)
#define SMALL_MAX	(4 * 1024 * 1024)

static const struct sb_host_api	*api;

static void
hex(const unsigned char *md, unsigned int n, char *out)
{
	unsigned int	i;

	for (i = 0; i < n; i++) {
		out[i * 2] = "0123456789abcdef"[md[i] >> 4];
		out[i * 2 + 1] = "0123456789abcdef"[md[i] & 0x0f];
	}
	out[n * 2] = '\0';
}

/* SHA-256 of a part's bytes, read where they are; -1 on a read error. */
static int
part_sha256(const struct sb_part *p, char out[65])
{
	EVP_MD_CTX	*ctx;
	unsigned char	 md[EVP_MAX_MD_SIZE], *buf;
	unsigned int	 mdlen;
	uint64_t	 done;
	size_t		 want;
	ssize_t		 r;
	int		 rc = -1;

	buf = NULL;
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	if (p->data != NULL) {
		if (EVP_DigestUpdate(ctx, p->data, (size_t)p->len) != 1)
			goto out;
	} else {
		if ((buf = malloc(CHUNK)) == NULL)
			goto out;
		for (done = 0; done < p->len; done += (uint64_t)r) {
			want = p->len - done < CHUNK ?
			    (size_t)(p->len - done) : CHUNK;
			r = pread(p->fd, buf, want, (off_t)(p->offset + done));
			if (r == -1 && errno == EINTR) {
				r = 0;
				continue;
			}
			if (r <= 0 || EVP_DigestUpdate(ctx, buf, (size_t)r) != 1)
				goto out;
		}
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
		goto out;
	hex(md, mdlen, out);
	rc = 0;
out:
	free(buf);
	EVP_MD_CTX_free(ctx);
	return (rc);
}

static void
uploader_parts(struct sb_req *req)
{
	const struct sb_part	*parts;
	json_t			*out, *o;
	char			 sha[65];
	size_t			 n, i;

	if (api->req_parts(req, &parts, &n) != SB_OK)
		return;		/* answered: 415 or 400 */
	out = json_array();
	for (i = 0; i < n; i++) {
		if (parts[i].size < sizeof(struct sb_part) ||
		    part_sha256(&parts[i], sha) == -1) {
			json_decref(out);
			api->respond_error(req, 500, "INTERNAL", "cannot read "
			    "a part", NULL);
			return;
		}
		o = json_pack("{s:s, s:s?, s:s?, s:I, s:s, s:s}",
		    "name", parts[i].name, "filename", parts[i].filename,
		    "content_type", parts[i].content_type,
		    "len", (json_int_t)parts[i].len,
		    "where", parts[i].data != NULL ? "memory" : "file",
		    "sha256", sha);
		json_array_append_new(out, o);
	}
	api->respond_json(req, 200, json_pack("{s:o}", "parts", out));
}

static void
uploader_raw(struct sb_req *req)
{
	const void	*body;
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen;
	char		 sha[65];
	size_t		 len;

	body = api->req_body(req, &len);
	if (EVP_Digest(body != NULL ? body : "", len, md, &mdlen,
	    EVP_sha256(), NULL) != 1) {
		api->respond_error(req, 500, "INTERNAL", "digest", NULL);
		return;
	}
	hex(md, mdlen, sha);
	api->respond_json(req, 200, json_pack("{s:I, s:s}", "len",
	    (json_int_t)len, "sha256", sha));
}

static void
uploader_json(struct sb_req *req)
{
	const char	*text;

	text = json_string_value(json_object_get(api->req_json(req), "text"));
	api->respond_json(req, 200, json_pack("{s:I}", "len",
	    (json_int_t)strlen(text)));
}

static const struct sb_field json_body[] = {
	{ .name = "text", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .max_len = SMALL_MAX },
	SB_FIELD_END
};

static const struct sb_route routes[] = {
	{ .method = "POST", .path = "/api/v1/uploader/parts",
	  .flags = SB_ROUTE_PUBLIC, .handler = uploader_parts,
	  .body_max = PARTS_MAX },
	{ .method = "POST", .path = "/api/v1/uploader/raw",
	  .flags = SB_ROUTE_PUBLIC, .handler = uploader_raw,
	  .body_max = SMALL_MAX },
	{ .method = "POST", .path = "/api/v1/uploader/json",
	  .flags = SB_ROUTE_PUBLIC, .handler = uploader_json,
	  .body = json_body, .body_max = SMALL_MAX },
	SB_ROUTE_END
};

static int
uploader_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	if (!SB_API_HAS(api, req_parts))
		return (SB_ERROR);
	return (api->routes_add(p, routes));
}

SB_PLUGIN(
	.id = "io.switchboard.test.uploader",
	.name = "uploader",
	.version = "1.0.0",
	.summary = "Test plugin for multipart uploads and bodies on disk",
	.setup = uploader_setup,
)
