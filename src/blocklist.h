/*-------------------------------------------------------------------------
 *
 * blocklist.h
 *	  Hosts links may not point at (blocklist.c): the patterns of
 *	  shorturl.blocked_hosts, and the deployment's own short domains.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_BLOCKLIST_H
#define SHORTURL_BLOCKLIST_H

extern void blocklist_init(void);
extern void blocklist_check_url(text *url);
extern bool blocklist_blocks_url(const text *url);

#endif							/* SHORTURL_BLOCKLIST_H */
