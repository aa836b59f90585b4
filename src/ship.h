/*-------------------------------------------------------------------------
 *
 * ship.h
 *	  Read replicas: a hot standby's clicks, shipped to the primary (ship.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_SHIP_H
#define SHORTURL_SHIP_H

#include "dbstate.h"

extern bool ship_now(db_state *db);
extern void ship_hand_over(db_state *db);
extern void ship_promoted(db_state *db);
extern void ship_disconnect(void);

#endif							/* SHORTURL_SHIP_H */
