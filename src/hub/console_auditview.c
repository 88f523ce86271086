/* console_auditview.c — placeholder while the view is written. */
#include "console_int.h"

void con_view_audit(struct mt_console *c, const struct mt_https_req *rq, struct mt_https_resp *rs,
         struct session *s, int64_t now)
{
	(void)rq;
	(void)now;
	con_message(c, rs, 404, s, "Not found", "There is no such page.");
}
