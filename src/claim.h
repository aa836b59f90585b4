/*-------------------------------------------------------------------------
 *
 * claim.h
 *	  Read replicas: a limited link's visit, claimed on the primary from a
 *	  hot standby (claim.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_CLAIM_H
#define SHORTURL_CLAIM_H

/* The primary's answer to a claim, or why there is none */
typedef enum claim_answer
{
	CLAIM_ACTIVE,				/* the link is active there (and the visit
								 * counted, if taken) */
	CLAIM_EXHAUSTED,
	CLAIM_EXPIRED,
	CLAIM_DISABLED,
	CLAIM_UNKNOWN,				/* no such link there */
	CLAIM_REFUSED,				/* active there, but the visit could not be
								 * counted where it would stick */
	CLAIM_UNREACHABLE			/* no answer within shorturl.claim_timeout */
} claim_answer;

extern claim_answer claim_visit(int64 link_id, bool take, bool bot);
extern void claim_forget(void);

#endif							/* SHORTURL_CLAIM_H */
