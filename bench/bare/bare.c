/*
 * The baseline for bench/run.sh: a bare Kore module answering /healthz
 * with the same body as Switchboard's, built with the same Kore binary,
 * feature flags and compiler options.  The ratio of the two figures is
 * the cost of the host's request path (router, headers, access log).
 */

#include <kore/kore.h>
#include <kore/http.h>

int	bare_healthz(struct http_request *);

int
bare_healthz(struct http_request *req)
{
	static const char	body[] = "{\"status\":\"ok\"}";

	http_response_header(req, "content-type",
	    "application/json; charset=utf-8");
	http_response(req, 200, body, sizeof(body) - 1);
	return (KORE_RESULT_OK);
}
